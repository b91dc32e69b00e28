package dev.ferry.protocol;

import com.fasterxml.jackson.annotation.JsonProperty;

/** Where a migration is. Phases before {@link #MEMORY_MIGRATION} can be rolled back. */
public enum MigrationPhase {
  @JsonProperty("queued")
  QUEUED,
  @JsonProperty("preflight")
  PREFLIGHT,
  @JsonProperty("preparing-destination")
  PREPARING_DESTINATION,
  /** Cold strategy: the guest was asked to power off (ACPI) and is awaited. */
  @JsonProperty("shutting-down")
  SHUTTING_DOWN,
  @JsonProperty("dirty-tracking")
  DIRTY_TRACKING,
  @JsonProperty("creating-overlays")
  CREATING_OVERLAYS,
  @JsonProperty("bulk-copy")
  BULK_COPY,
  @JsonProperty("verifying-copies")
  VERIFYING_COPIES,
  @JsonProperty("dropping-metadata")
  DROPPING_METADATA,
  @JsonProperty("memory-migration")
  MEMORY_MIGRATION,
  @JsonProperty("final-sync")
  FINAL_SYNC,
  @JsonProperty("merging")
  MERGING,
  @JsonProperty("verifying")
  VERIFYING,
  @JsonProperty("resuming")
  RESUMING,
  /**
   * Cold strategy: the destination defines the domain, redefines its snapshots and boots it. After
   * the start was asked for, the source does not restart the guest unless the destination proves it
   * is not running there.
   */
  @JsonProperty("starting")
  STARTING,
  @JsonProperty("source-cleanup")
  SOURCE_CLEANUP,
  @JsonProperty("rolling-back")
  ROLLING_BACK,
  @JsonProperty("migrating-back")
  MIGRATING_BACK,
  @JsonProperty("finished")
  FINISHED;

  /** Before the switchover: a failure or a cancel rolls back to the source. */
  public boolean beforeSwitchover() {
    return ordinal() < MEMORY_MIGRATION.ordinal();
  }
}
