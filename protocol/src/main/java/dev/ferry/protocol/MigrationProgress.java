package dev.ferry.protocol;

import java.util.List;

/**
 * A snapshot of a migration in flight, published at every phase change and once a second.
 *
 * @param bytesDone bytes moved so far (disks and memory)
 * @param bytesTotal bytes to move as currently estimated
 * @param bytesPerSecond recent rate
 * @param etaSeconds estimated seconds left; -1 when unknown
 * @param pausedMillis how long the VM has been paused in the switchover (0 outside it)
 */
public record MigrationProgress(
    String migrationId,
    String vm,
    String source,
    String destination,
    MigrationPhase phase,
    List<DiskProgress> disks,
    MemoryProgress memory,
    long bytesDone,
    long bytesTotal,
    long bytesPerSecond,
    long etaSeconds,
    long pausedMillis,
    long startedAtMillis,
    long updatedAtMillis,
    String message)
    implements CborSerializable {

  public MigrationProgress {
    disks = List.copyOf(disks);
  }
}
