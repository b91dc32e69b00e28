package dev.ferry.protocol;

import java.util.List;

/**
 * How a migration ended. {@code runningOn} is where the VM runs now; {@code message} says exactly
 * what happened, including every step that was undone.
 *
 * @param pausedMillis the paused window: source paused for the switchover until the VM ran again
 * @param bytesMoved disk and memory bytes sent
 * @param snapshots the snapshots the VM has where it runs
 */
public record MigrationResult(
    String migrationId,
    String vm,
    String source,
    String destination,
    MigrationOutcome outcome,
    String runningOn,
    String message,
    MigrationStrategy strategy,
    List<DiskResult> disks,
    Verification verification,
    long pausedMillis,
    long totalMillis,
    long bytesMoved,
    long startedAtMillis,
    long finishedAtMillis,
    List<String> snapshots)
    implements CborSerializable {

  public MigrationResult {
    disks = List.copyOf(disks);
    snapshots = List.copyOf(snapshots);
  }
}
