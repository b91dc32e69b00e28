package dev.ferry.node.scheduler;

import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.SchedulerProtocol;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.LongSupplier;

/**
 * The hosts as the scheduler last heard of them: each agent's latest inventory and when it came.
 * Not journaled (rebuilt within an inventory interval after a start or failover); owned by the
 * scheduler's actor and touched only on its thread. A host whose inventory is older than {@code
 * inventory-stale-after} is unreachable: nothing is placed on it or moved off it by guesswork.
 */
final class KnownHosts {
  private final Map<String, HostLoads.Known> known = new TreeMap<>();
  private final SchedulerSettings settings;
  private final LongSupplier clock;

  KnownHosts(SchedulerSettings settings, LongSupplier clock) {
    this.settings = settings;
    this.clock = clock;
  }

  /** Records an agent's inventory; true when its host was not reachable before. */
  boolean record(HostInventory inventory) {
    boolean fresh = !reachable(inventory.host());
    known.put(inventory.host(), new HostLoads.Known(inventory, clock.getAsLong()));
    return fresh;
  }

  /** Every host that ever reported, reachable or not, by name. */
  Map<String, HostLoads.Known> all() {
    return known;
  }

  Optional<HostLoads.Known> get(String host) {
    return Optional.ofNullable(known.get(host));
  }

  boolean reachable(String host) {
    HostLoads.Known k = known.get(host);
    return k != null
        && clock.getAsLong() - k.receivedAtMillis() <= settings.inventoryStaleAfter().toMillis();
  }

  Map<String, HostLoads.Known> reachableInventories() {
    Map<String, HostLoads.Known> m = new TreeMap<>();
    known.forEach(
        (h, k) -> {
          if (reachable(h)) {
            m.put(h, k);
          }
        });
    return m;
  }

  /** Why a request names a host no agent reported from, if it does. */
  Optional<String> unknownHosts(String source, String destination) {
    for (String h : destination.isEmpty() ? List.of(source) : List.of(source, destination)) {
      if (!known.containsKey(h)) {
        return Optional.of(
            "unknown host "
                + h
                + ": no agent on it has reported (known: "
                + String.join(", ", known.keySet())
                + ")");
      }
    }
    return Optional.empty();
  }

  /**
   * The request with the VM named as libvirt names it. OpenNebula asks by the domain's UUID (its
   * deploy id); jobs, journals and the engine use the name. Every host is searched, so a retry
   * after the VM moved resolves to the same name as the first call did.
   */
  MigrationRequest byName(MigrationRequest r) {
    for (HostLoads.Known k : known.values()) {
      for (HostInventory.VmInfo v : k.inventory().vms()) {
        if (!v.name().equals(r.vm()) && v.isCalled(r.vm())) {
          return new MigrationRequest(
              v.name(), r.source(), r.destination(), r.options(), r.priority(), r.origin());
        }
      }
    }
    return r;
  }

  /** Where a VM (by name or UUID) is defined, on the hosts whose inventories are fresh. */
  SchedulerProtocol.VmReply whereIs(String vm) {
    String name = vm;
    String uuid = "";
    List<SchedulerProtocol.VmPlace> on = new ArrayList<>();
    for (Map.Entry<String, HostLoads.Known> e : known.entrySet()) {
      if (!reachable(e.getKey())) {
        continue; // a stale inventory would place the VM where it may no longer be
      }
      for (HostInventory.VmInfo v : e.getValue().inventory().vms()) {
        if (v.isCalled(vm)) {
          name = v.name();
          uuid = v.uuid();
          on.add(
              new SchedulerProtocol.VmPlace(
                  e.getKey(), v.running(), clock.getAsLong() - e.getValue().receivedAtMillis()));
        }
      }
    }
    return new SchedulerProtocol.VmReply(name, uuid, on);
  }

  /** The VM of that name in the host's last inventory. */
  Optional<HostInventory.VmInfo> vmOn(String host, String vm) {
    HostLoads.Known k = known.get(host);
    return k == null
        ? Optional.empty()
        : k.inventory().vms().stream().filter(v -> v.name().equals(vm)).findFirst();
  }
}
