package dev.ferry.protocol;

/**
 * What the caller asks for.
 *
 * @param strategy suspend-sync or overlay
 * @param finalSync how the suspend-sync flow syncs the paused destination
 * @param bulkCopy how files are copied while the VM runs
 * @param bandwidthBytesPerSecond cap for disk copies and memory together; 0 = none
 * @param maxDowntimeMillis libvirt's max downtime for the memory switchover; 0 = libvirt's default
 * @param warmPasses extra {@code rsync --inplace} passes while running, to shrink the final rsync
 * @param autoConverge throttle vCPUs if memory does not converge
 * @param deadlineEpochMillis give up (and roll back) if the switchover has not started by then; 0 =
 *     none
 */
public record MigrationOptions(
    MigrationStrategy strategy,
    FinalSyncMethod finalSync,
    BulkCopyMethod bulkCopy,
    long bandwidthBytesPerSecond,
    long maxDowntimeMillis,
    int warmPasses,
    boolean autoConverge,
    long deadlineEpochMillis)
    implements CborSerializable {

  public static MigrationOptions defaults() {
    // overlay: the shortest paused window with every check passing (bench/results, one run:
    // 0.13/0.15/0.11 s at 0.5/2/4 GiB, 0.41-0.67x copy-storage-all's, flat with size; the
    // suspend-sync bitmap delta paid 0.66-1.8 s, growing with size). suspend-sync stays
    // selectable. rsync --sparse, not tar -S: GNU tar 1.34 scans every data block for zeros and
    // extracts sparse members slowly (631 MB on the test bed: tar -S | ssh tar -x 9.3 s, rsync
    // 4.7 s)
    return new MigrationOptions(
        MigrationStrategy.OVERLAY, FinalSyncMethod.AUTO, BulkCopyMethod.RSYNC, 0, 0, 0, false, 0);
  }

  public MigrationOptions withStrategy(MigrationStrategy s) {
    return new MigrationOptions(
        s,
        finalSync,
        bulkCopy,
        bandwidthBytesPerSecond,
        maxDowntimeMillis,
        warmPasses,
        autoConverge,
        deadlineEpochMillis);
  }

  public MigrationOptions withFinalSync(FinalSyncMethod m) {
    return new MigrationOptions(
        strategy,
        m,
        bulkCopy,
        bandwidthBytesPerSecond,
        maxDowntimeMillis,
        warmPasses,
        autoConverge,
        deadlineEpochMillis);
  }

  public MigrationOptions withBulkCopy(BulkCopyMethod m) {
    return new MigrationOptions(
        strategy,
        finalSync,
        m,
        bandwidthBytesPerSecond,
        maxDowntimeMillis,
        warmPasses,
        autoConverge,
        deadlineEpochMillis);
  }

  public MigrationOptions withBandwidth(long bytesPerSecond) {
    return new MigrationOptions(
        strategy,
        finalSync,
        bulkCopy,
        bytesPerSecond,
        maxDowntimeMillis,
        warmPasses,
        autoConverge,
        deadlineEpochMillis);
  }

  public MigrationOptions withMaxDowntime(long millis) {
    return new MigrationOptions(
        strategy,
        finalSync,
        bulkCopy,
        bandwidthBytesPerSecond,
        millis,
        warmPasses,
        autoConverge,
        deadlineEpochMillis);
  }

  public MigrationOptions withWarmPasses(int passes) {
    return new MigrationOptions(
        strategy,
        finalSync,
        bulkCopy,
        bandwidthBytesPerSecond,
        maxDowntimeMillis,
        passes,
        autoConverge,
        deadlineEpochMillis);
  }

  /** libvirt's auto-converge: throttle the guest's vCPUs when its memory dirties too fast. */
  public MigrationOptions withAutoConverge(boolean on) {
    return new MigrationOptions(
        strategy,
        finalSync,
        bulkCopy,
        bandwidthBytesPerSecond,
        maxDowntimeMillis,
        warmPasses,
        on,
        deadlineEpochMillis);
  }

  public MigrationOptions withDeadline(long epochMillis) {
    return new MigrationOptions(
        strategy,
        finalSync,
        bulkCopy,
        bandwidthBytesPerSecond,
        maxDowntimeMillis,
        warmPasses,
        autoConverge,
        epochMillis);
  }
}
