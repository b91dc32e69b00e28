package dev.ferry.node.libvirt;

/** libvirt's domain states. */
public enum DomainState {
  NOSTATE,
  RUNNING,
  BLOCKED,
  PAUSED,
  SHUTDOWN,
  SHUTOFF,
  CRASHED,
  PMSUSPENDED;

  /** Whether a QEMU process exists for the domain. */
  public boolean active() {
    return this != SHUTOFF && this != NOSTATE;
  }
}
