package dev.ferry.node.scheduler;

import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * What each reachable host holds and has promised, as placement must see it: the VMs its last
 * inventory listed, plus the VMs on their way to it (running migrations) and those that arrived
 * after that inventory was read, minus those that left it since. Memory is counted as committed
 * (the VMs' configured RAM), as OpenNebula does, not as the kernel's free memory, which swings with
 * page cache.
 */
final class HostLoads {

  /** One VM as placement sees it. */
  record Vm(String name, int vcpus, long memoryBytes, long diskBytes) {
    long bytes() {
      return memoryBytes + diskBytes;
    }
  }

  /** One host's capacity and what is on it or promised to it. */
  static final class Load {
    final String host;
    final int cpus;
    final long memoryBytes;
    final long datastoreBytes;
    final long datastoreFreeBytes;
    long incomingDiskBytes;
    // what the inventory reported, and the changes made on top of it (VMs gone, VMs arrived or
    // promised): an admission round builds every host's load (20 VMs x 1,000 hosts) and needs
    // only the sums below for nearly all of them, so no per-VM map is built unless asked for
    private final List<HostInventory.VmInfo> reported;
    private Set<String> hidden; // null until a VM goes: most loads never change in a round
    private Map<String, Vm> added; // null until one arrives
    // kept with every change: placement and planning ask for them once per host and candidate
    private long committedMemory;
    private int vcpus;

    Load(HostInventory inv) {
      this.host = inv.host();
      this.cpus = inv.cpus();
      this.memoryBytes = inv.memoryBytes();
      this.datastoreBytes = inv.datastoreBytes();
      this.datastoreFreeBytes = inv.datastoreFreeBytes();
      this.reported = inv.vms();
      for (HostInventory.VmInfo v : reported) {
        committedMemory += v.memoryBytes();
        vcpus += v.vcpus();
      }
    }

    private Vm get(String name) {
      Vm vm = added == null ? null : added.get(name);
      if (vm != null || hidden != null && hidden.contains(name)) {
        return vm;
      }
      for (HostInventory.VmInfo v : reported) {
        if (v.name().equals(name)) {
          return new Vm(v.name(), v.vcpus(), v.memoryBytes(), v.diskBytes());
        }
      }
      return null;
    }

    boolean has(String vm) {
      return get(vm) != null;
    }

    /** The VMs on this host or promised to it, by name, in inventory order then arrival order. */
    Map<String, Vm> vms() {
      Map<String, Vm> m = new LinkedHashMap<>();
      for (HostInventory.VmInfo v : reported) {
        if (hidden == null || !hidden.contains(v.name())) {
          m.put(v.name(), new Vm(v.name(), v.vcpus(), v.memoryBytes(), v.diskBytes()));
        }
      }
      if (added != null) {
        m.putAll(added);
      }
      return java.util.Collections.unmodifiableMap(m);
    }

    void put(Vm vm) {
      remove(vm.name());
      if (added == null) {
        added = new LinkedHashMap<>();
      }
      added.put(vm.name(), vm);
      committedMemory += vm.memoryBytes();
      vcpus += vm.vcpus();
    }

    void remove(String name) {
      Vm old = get(name);
      if (old != null) {
        if (added != null) {
          added.remove(name);
        }
        if (hidden == null) {
          hidden = new HashSet<>();
        }
        hidden.add(name);
        committedMemory -= old.memoryBytes();
        vcpus -= old.vcpus();
      }
    }

    long committedMemory() {
      return committedMemory;
    }

    int vcpus() {
      return vcpus;
    }

    /** Committed memory as a fraction of the host's. */
    double memoryUse() {
      return memoryBytes == 0 ? 1.0 : (double) committedMemory() / memoryBytes;
    }

    long freeMemory() {
      return memoryBytes - committedMemory();
    }
  }

  private final Map<String, Load> loads = new TreeMap<>();

  private HostLoads() {}

  /**
   * @param inventories the reachable hosts' inventories with when each was received
   * @param running jobs running now: their VMs count on the destination too (and stay on the source
   *     until they finish)
   * @param finished recently finished jobs: a completed one moved its VM if the inventories are
   *     older than its end
   */
  static HostLoads of(
      Map<String, Known> inventories, Collection<Job> running, Collection<Job> finished) {
    HostLoads h = new HostLoads();
    for (Known k : inventories.values()) {
      h.loads.put(k.inventory().host(), new Load(k.inventory()));
    }
    for (Job j : finished) {
      if (j.state() != JobState.COMPLETED) {
        continue;
      }
      Load src = h.loads.get(j.source());
      Load dst = h.loads.get(j.landedOn());
      if (src != null && inventories.get(j.source()).receivedAtMillis() < j.finishedAtMillis()) {
        src.remove(j.vm());
      }
      if (dst != null && inventories.get(j.landedOn()).receivedAtMillis() < j.finishedAtMillis()) {
        dst.put(vmOf(j));
      }
    }
    for (Job j : running) {
      Load dst = h.loads.get(j.destination());
      if (dst != null && !dst.has(j.vm())) {
        dst.put(vmOf(j));
        dst.incomingDiskBytes += j.diskBytes();
      }
    }
    return h;
  }

  /** An inventory and when the scheduler received it (its own clock, not the agent's). */
  record Known(HostInventory inventory, long receivedAtMillis) {}

  static Vm vmOf(Job j) {
    return new Vm(j.vm(), j.vcpus(), j.memoryBytes(), j.diskBytes());
  }

  Optional<Load> load(String host) {
    return Optional.ofNullable(loads.get(host));
  }

  Collection<Load> all() {
    return loads.values();
  }

  /** Where {@code vm} runs according to these loads, if anywhere. */
  Optional<String> hostOf(String vm) {
    return loads.values().stream().filter(l -> l.has(vm)).map(l -> l.host).findFirst();
  }

  /** Why {@code vm} does not fit on {@code host}, or empty when it does. */
  Optional<String> whyNotFits(String host, Vm vm, SchedulerSettings settings) {
    Load l = loads.get(host);
    if (l == null) {
      return Optional.of(host + " is unreachable");
    }
    if (l.committedMemory() + vm.memoryBytes() + settings.memoryHeadroom() > l.memoryBytes) {
      return Optional.of(host + " lacks memory");
    }
    if (l.vcpus() + vm.vcpus() > l.cpus * settings.cpuOvercommit()) {
      return Optional.of(host + " lacks vCPUs");
    }
    long keep = (long) (l.datastoreBytes * settings.datastoreHeadroom());
    if (l.datastoreFreeBytes - l.incomingDiskBytes - vm.diskBytes() < keep) {
      return Optional.of(host + " lacks datastore space");
    }
    return Optional.empty();
  }

  /** Whether {@code vm} fits on {@code l}: {@link #whyNotFits} without building the reason. */
  private static boolean fits(Load l, Vm vm, SchedulerSettings settings) {
    return l.committedMemory() + vm.memoryBytes() + settings.memoryHeadroom() <= l.memoryBytes
        && l.vcpus() + vm.vcpus() <= l.cpus * settings.cpuOvercommit()
        && l.datastoreFreeBytes - l.incomingDiskBytes - vm.diskBytes()
            >= (long) (l.datastoreBytes * settings.datastoreHeadroom());
  }

  /**
   * The hosts {@code vm} fits on, best first: the most free memory after the move, then the name.
   */
  List<String> candidates(
      Vm vm, String source, java.util.function.Predicate<String> eligible, SchedulerSettings s) {
    List<Load> fit = new ArrayList<>();
    for (Load l : loads.values()) {
      if (!l.host.equals(source) && eligible.test(l.host) && fits(l, vm, s)) {
        fit.add(l);
      }
    }
    fit.sort(
        Comparator.comparingLong((Load l) -> -l.freeMemory())
            .thenComparing(l -> l.host, Comparator.naturalOrder()));
    return fit.stream().map(l -> l.host).toList();
  }

  /** Records a move decided in this round, so the next decision sees it. */
  void move(Vm vm, String source, String destination) {
    Load src = loads.get(source);
    if (src != null) {
      src.remove(vm.name());
    }
    Load dst = loads.get(destination);
    if (dst != null) {
      dst.put(vm);
      dst.incomingDiskBytes += vm.diskBytes();
    }
  }

  /** Reserves room on {@code destination} for a migration that starts now (it stays on source). */
  void reserve(Vm vm, String destination) {
    Load dst = loads.get(destination);
    if (dst != null && !dst.has(vm.name())) {
      dst.put(vm);
      dst.incomingDiskBytes += vm.diskBytes();
    }
  }

  /** A deep copy, for planning without touching this one. */
  HostLoads copy() {
    HostLoads c = new HostLoads();
    for (Load l : loads.values()) {
      Load n =
          new Load(
              new HostInventory(
                  l.host,
                  l.cpus,
                  l.memoryBytes,
                  0,
                  l.datastoreBytes,
                  l.datastoreFreeBytes,
                  List.of(),
                  0));
      l.vms().values().forEach(n::put);
      n.incomingDiskBytes = l.incomingDiskBytes;
      c.loads.put(n.host, n);
    }
    return c;
  }

  /** Used in tests and reports. */
  Map<String, Double> memoryUse() {
    Map<String, Double> m = new HashMap<>();
    loads.values().forEach(l -> m.put(l.host, l.memoryUse()));
    return m;
  }
}
