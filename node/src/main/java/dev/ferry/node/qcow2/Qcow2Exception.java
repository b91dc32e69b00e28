package dev.ferry.node.qcow2;

/** A qcow2 file this code cannot (or must not) compute a delta for; callers fall back to rsync. */
public final class Qcow2Exception extends RuntimeException {
  public Qcow2Exception(String message) {
    super(message);
  }
}
