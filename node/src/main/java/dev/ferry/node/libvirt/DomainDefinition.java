package dev.ferry.node.libvirt;

import java.util.List;

/** The parts of a domain's XML the engine needs, and the XML itself. */
public record DomainDefinition(
    String name,
    String uuid,
    String type,
    long memoryKiB,
    int vcpus,
    List<DiskDefinition> disks,
    String xml) {

  public DomainDefinition {
    disks = List.copyOf(disks);
  }
}
