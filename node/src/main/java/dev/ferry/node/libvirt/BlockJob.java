package dev.ferry.node.libvirt;

/** Progress of a block job (commit, copy) on one disk: {@code cur} of {@code end} bytes. */
public record BlockJob(String disk, long cur, long end) {
  /** An active commit is ready to pivot once it has caught up. */
  public boolean caughtUp() {
    return end > 0 && cur == end;
  }
}
