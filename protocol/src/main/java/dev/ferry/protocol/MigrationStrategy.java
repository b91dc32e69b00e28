package dev.ferry.protocol;

import com.fasterxml.jackson.annotation.JsonProperty;

/** How a migration moves the disks. */
public enum MigrationStrategy {
  /**
   * Copy the files while the VM runs, migrate memory with {@code --suspend}, make the paused
   * destination's files match the source in place, verify, resume.
   */
  @JsonProperty("suspend-sync")
  SUSPEND_SYNC,
  /**
   * Freeze each file under a temporary external overlay, copy the frozen files, mirror only the
   * overlay during a normal live migration, merge it back on the destination.
   */
  @JsonProperty("overlay")
  OVERLAY,
  /**
   * Not live: shut the guest down (ACPI), copy its files, define and start it on the destination
   * with its snapshot metadata, then remove it from the source. For guests that cannot migrate live
   * (a drain's fallback); the guest reboots, but its disks and snapshots move intact.
   */
  @JsonProperty("cold")
  COLD
}
