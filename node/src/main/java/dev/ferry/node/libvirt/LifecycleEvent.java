package dev.ferry.node.libvirt;

import java.time.Instant;

/**
 * A domain lifecycle event.
 *
 * @param domain the domain's name
 * @param type what happened ({@code SUSPENDED}, {@code RESUMED}, {@code STARTED}, ...)
 * @param detail why ({@code MIGRATED}, {@code PAUSED}, ...)
 * @param at when the agent received it
 */
public record LifecycleEvent(String domain, Type type, String detail, Instant at) {
  /** libvirt's lifecycle event types. */
  public enum Type {
    DEFINED,
    UNDEFINED,
    STARTED,
    SUSPENDED,
    RESUMED,
    STOPPED,
    SHUTDOWN,
    PMSUSPENDED,
    CRASHED,
    UNKNOWN
  }

  public boolean is(Type t, String d) {
    return type == t && detail.equals(d);
  }
}
