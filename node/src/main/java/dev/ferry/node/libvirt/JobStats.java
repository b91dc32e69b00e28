package dev.ferry.node.libvirt;

import java.util.OptionalLong;

/**
 * A migration job's statistics ({@code virDomainGetJobStats}). Byte counts; times in ms.
 *
 * @param active a job is running
 */
public record JobStats(
    boolean active,
    long timeElapsedMs,
    long memoryTotal,
    long memoryProcessed,
    long memoryRemaining,
    long memoryBps,
    long memoryDirtyRate,
    long memoryIteration,
    long diskTotal,
    long diskProcessed,
    long diskRemaining,
    OptionalLong downtimeMs) {

  public static JobStats none() {
    return new JobStats(false, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, OptionalLong.empty());
  }
}
