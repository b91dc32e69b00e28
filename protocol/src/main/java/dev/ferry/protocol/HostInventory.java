package dev.ferry.protocol;

import java.util.List;

/**
 * A host's capacity and use as its agent reads them from libvirt and the datastores.
 *
 * @param vms the domains running (or paused) on the host
 */
public record HostInventory(
    String host,
    int cpus,
    long memoryBytes,
    long freeMemoryBytes,
    long datastoreBytes,
    long datastoreFreeBytes,
    List<VmInfo> vms,
    long readAtMillis)
    implements CborSerializable {

  public HostInventory {
    vms = List.copyOf(vms);
  }

  /** One domain: its size and the bytes a migration of it would move. */
  public record VmInfo(String name, int vcpus, long memoryBytes, long diskBytes, boolean running)
      implements CborSerializable {}
}
