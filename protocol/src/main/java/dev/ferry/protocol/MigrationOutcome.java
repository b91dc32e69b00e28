package dev.ferry.protocol;

import com.fasterxml.jackson.annotation.JsonProperty;

/** How a migration ended, and so where the VM runs. */
public enum MigrationOutcome {
  /** Verified and running on the destination. */
  @JsonProperty("completed")
  COMPLETED,
  /** Failed before the switchover; running on the source, snapshot metadata restored. */
  @JsonProperty("rolled-back")
  ROLLED_BACK,
  /** Cancelled before the switchover; running on the source, as for a roll-back. */
  @JsonProperty("cancelled")
  CANCELLED,
  /**
   * Verification failed after the switchover; the paused VM's memory went back to the source, whose
   * files were still authoritative, and it runs there.
   */
  @JsonProperty("migrated-back")
  MIGRATED_BACK,
  /** Could not be completed or undone automatically; the message says where the VM is. */
  @JsonProperty("failed")
  FAILED
}
