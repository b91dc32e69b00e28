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

  /**
   * One domain: its size and the bytes a migration of it would move.
   *
   * @param uuid libvirt's UUID of the domain (OpenNebula's deploy id), or empty when not known
   */
  public record VmInfo(
      String name, int vcpus, long memoryBytes, long diskBytes, boolean running, String uuid)
      implements CborSerializable {

    public VmInfo {
      uuid = uuid == null ? "" : uuid;
    }

    public VmInfo(String name, int vcpus, long memoryBytes, long diskBytes, boolean running) {
      this(name, vcpus, memoryBytes, diskBytes, running, "");
    }

    /** Named {@code vm} by libvirt's name or by its UUID (case-insensitive, as libvirt does). */
    public boolean isCalled(String vm) {
      return name.equals(vm) || (!uuid.isEmpty() && uuid.equalsIgnoreCase(vm));
    }
  }
}
