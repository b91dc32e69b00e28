package dev.ferry.node.agent;

import dev.ferry.node.libvirt.DiskDefinition;
import dev.ferry.node.libvirt.DomainSummary;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.protocol.HostInventory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** Reads this host's capacity and use from libvirt and the datastore file systems. */
final class InventoryReader {
  private final HostPorts services;

  InventoryReader(HostPorts services) {
    this.services = services;
  }

  HostInventory read() {
    var hv = services.hypervisor();
    var info = hv.hostInfo();
    long dsTotal = 0;
    long dsFree = 0;
    Set<String> seen = new HashSet<>();
    try {
      for (Path root : services.datastores().roots()) {
        if (!Files.exists(root)) {
          continue;
        }
        FileStore store = Files.getFileStore(root);
        if (seen.add(store.name() + store.toString())) {
          dsTotal += store.getTotalSpace();
          dsFree += store.getUsableSpace();
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    List<HostInventory.VmInfo> vms = new ArrayList<>();
    for (DomainSummary d : hv.listDomains()) {
      if (!d.state().active()) {
        continue;
      }
      long disk = 0;
      try {
        for (DiskDefinition def : hv.definition(d.name(), false).disks()) {
          if (def.writableFile()) {
            disk += services.usage().allocated(Path.of(def.sourceFile().get()));
          }
        }
      } catch (RuntimeException e) {
        // a domain that went away meanwhile, or a disk we cannot stat: count what we have
      }
      vms.add(
          new HostInventory.VmInfo(
              d.name(),
              d.vcpus(),
              d.memoryKiB() * 1024,
              disk,
              d.state() == dev.ferry.node.libvirt.DomainState.RUNNING,
              d.uuid()));
    }
    return new HostInventory(
        services.settings().host(),
        info.cpus(),
        info.memoryKiB() * 1024,
        info.freeMemoryBytes(),
        dsTotal,
        dsFree,
        vms,
        System.currentTimeMillis());
  }
}
