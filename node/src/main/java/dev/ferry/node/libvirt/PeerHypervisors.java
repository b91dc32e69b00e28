package dev.ferry.node.libvirt;

/**
 * Connections to another host's libvirt, for what its agent would do but cannot: it stopped after
 * the switchover, and the paused VM must not wait for it (docs/invariants.md, I5).
 */
@FunctionalInterface
public interface PeerHypervisors {
  /** A new connection to {@code host}'s libvirt; the caller closes it. */
  Hypervisor connect(String host);

  /** For hosts that never act for a peer (tests of single-host behaviour). */
  PeerHypervisors NONE =
      host -> {
        throw new HypervisorException(
            "VIR_ERR_NO_CONNECT", "no connection to " + host + "'s libvirt is configured", null);
      };
}
