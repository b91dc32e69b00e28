package dev.ferry.node.fakes;

import dev.ferry.node.libvirt.BlockJob;
import dev.ferry.node.libvirt.DiskDefinition;
import dev.ferry.node.libvirt.DomainDefinition;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.DomainSummary;
import dev.ferry.node.libvirt.HostInfo;
import dev.ferry.node.libvirt.Hypervisor;
import dev.ferry.node.libvirt.HypervisorException;
import dev.ferry.node.libvirt.JobStats;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.libvirt.MigrationFlag;
import dev.ferry.node.libvirt.MigrationRequest;
import dev.ferry.node.libvirt.SnapshotDefinition;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * An in-memory {@link Hypervisor} for unit tests of the migration actors. Domains move between the
 * hosts of a {@link FakeCloud} on {@code migrate}, with the lifecycle events libvirt 9.0 emits
 * (source Suspended/Migrated, destination Started/Migrated then Suspended/Paused with PAUSED). It
 * refuses to migrate a domain with snapshot metadata, as libvirt does. Calls are recorded.
 */
public final class FakeHypervisor implements Hypervisor {

  /** A fake domain. */
  public static final class Domain {
    public volatile DomainDefinition definition;
    public volatile DomainState state = DomainState.RUNNING;
    public final List<SnapshotDefinition> snapshots = new CopyOnWriteArrayList<>();
    public volatile String current = "";
    public final Set<String> bitmaps = ConcurrentHashMap.newKeySet();
    public volatile boolean activated;

    /** Arrived paused by an incoming migration and never resumed or activated. */
    public volatile boolean inactiveImages;

    Domain(DomainDefinition definition) {
      this.definition = definition;
    }
  }

  private final String host;
  private final FakeCloud cloud;
  public final Map<String, Domain> domains = new ConcurrentHashMap<>();
  private final List<Consumer<LifecycleEvent>> listeners = new CopyOnWriteArrayList<>();
  public final List<String> calls = new CopyOnWriteArrayList<>();

  /** The next memory migration fails with this, once. */
  public volatile RuntimeException failNextMigration;

  /** Memory migrations wait for this latch (to test aborts and cancels). */
  public volatile CountDownLatch migrationGate;

  /**
   * After the destination has the domain (paused or running), the call waits for this latch before
   * the source's domain goes away and the call returns: libvirt's confirm phase.
   */
  public volatile CountDownLatch confirmGate;

  /**
   * As a destination: the domain arrives paused but no Suspended/Paused event is delivered (late or
   * lost), so only the source's messages tell the destination the switchover happened.
   */
  public volatile boolean losePausedEvent;

  /** abortJob calls; an abort makes the running (gated) migration fail as libvirt's does. */
  public final java.util.concurrent.atomic.AtomicInteger aborts =
      new java.util.concurrent.atomic.AtomicInteger();

  private volatile boolean abortPending;

  FakeHypervisor(String host, FakeCloud cloud) {
    this.host = host;
    this.cloud = cloud;
  }

  /** Defines and "starts" a domain with these file disks (qcow2 unless the name ends in .raw). */
  public Domain addRunning(String name, long memoryKiB, List<String> diskPaths) {
    List<DiskDefinition> disks = new ArrayList<>();
    char dev = 'a';
    for (String p : diskPaths) {
      disks.add(
          new DiskDefinition(
              "vd" + dev++,
              "disk",
              "file",
              Optional.of(p),
              Optional.of(p.endsWith(".raw") ? "raw" : "qcow2"),
              false,
              false,
              "virtio",
              List.of()));
    }
    Domain d =
        new Domain(
            new DomainDefinition(
                name, "uuid-" + name, "qemu", memoryKiB, 1, disks, xmlOf(name, disks)));
    domains.put(name, d);
    return d;
  }

  /** The domain XML libvirt would print for such a domain (name, UUID, file disks). */
  private static String xmlOf(String name, List<DiskDefinition> disks) {
    StringBuilder xml =
        new StringBuilder("<domain type='qemu'><name>")
            .append(name)
            .append("</name><uuid>uuid-")
            .append(name)
            .append("</uuid><devices>");
    for (DiskDefinition d : disks) {
      xml.append("<disk type='file' device='disk'><driver name='qemu' type='")
          .append(d.driverType().orElse("raw"))
          .append("'/><source file='")
          .append(d.sourceFile().orElse(""))
          .append("'/><target dev='")
          .append(d.target())
          .append("' bus='virtio'/></disk>");
    }
    return xml.append("</devices></domain>").toString();
  }

  private Domain require(String name) {
    Domain d = domains.get(name);
    if (d == null) {
      throw new HypervisorException(
          "VIR_ERR_NO_DOMAIN",
          "Domain not found: no domain with matching name '" + name + "'",
          null);
    }
    return d;
  }

  private void emit(String domain, LifecycleEvent.Type type, String detail) {
    LifecycleEvent e = new LifecycleEvent(domain, type, detail, Instant.now());
    listeners.forEach(l -> l.accept(e));
  }

  @Override
  public List<DomainSummary> listDomains() {
    return domains.keySet().stream().sorted().map(n -> lookup(n).orElseThrow()).toList();
  }

  @Override
  public Optional<DomainSummary> lookup(String domain) {
    Domain d = domains.get(domain);
    return d == null
        ? Optional.empty()
        : Optional.of(
            new DomainSummary(
                domain, d.definition.uuid(), d.state, true, d.definition.memoryKiB(), 1));
  }

  @Override
  public DomainDefinition definition(String domain, boolean inactive) {
    return require(domain).definition;
  }

  /**
   * Defines (shut off) the domain named in the XML, with the definition another host of the cloud
   * has for it: the fake does not parse disks out of XML.
   */
  @Override
  public void define(String xml) {
    calls.add("define");
    String name = xml.replaceFirst("(?s)^.*?<name>([^<]+)</name>.*$", "$1");
    if (name.equals(xml) || domains.containsKey(name)) {
      return;
    }
    cloud
        .definitionOf(name)
        .ifPresent(
            def -> {
              Domain d = new Domain(def);
              d.state = DomainState.SHUTOFF;
              domains.put(name, d);
            });
  }

  /** The next start fails with this, once. */
  public volatile RuntimeException failNextStart;

  /** Guests here ignore the ACPI power button. */
  public volatile boolean ignoreShutdown;

  @Override
  public void start(String domain) {
    calls.add("start " + domain);
    Domain d = require(domain);
    RuntimeException fail = failNextStart;
    if (fail != null) {
      failNextStart = null;
      throw fail;
    }
    d.state = DomainState.RUNNING;
    emit(domain, LifecycleEvent.Type.STARTED, "BOOTED");
    afterStart.accept(domain);
  }

  /** Runs after each successful start (to make something happen elsewhere meanwhile). */
  public volatile Consumer<String> afterStart = domain -> {};

  @Override
  public void suspend(String domain) {
    require(domain).state = DomainState.PAUSED;
  }

  @Override
  public void resume(String domain) {
    calls.add("resume " + domain);
    require(domain).state = DomainState.RUNNING;
    require(domain).inactiveImages = false;
    emit(domain, LifecycleEvent.Type.RESUMED, "UNPAUSED");
  }

  @Override
  public void destroy(String domain) {
    calls.add("destroy " + domain);
    require(domain).state = DomainState.SHUTOFF;
  }

  @Override
  public void shutdown(String domain) {
    calls.add("shutdown " + domain);
    Domain d = require(domain);
    if (!ignoreShutdown) {
      d.state = DomainState.SHUTOFF;
      emit(domain, LifecycleEvent.Type.STOPPED, "SHUTDOWN");
    }
  }

  @Override
  public void undefine(String domain) {
    calls.add("undefine " + domain);
    domains.remove(domain);
  }

  @Override
  public List<SnapshotDefinition> snapshots(String domain) {
    return List.copyOf(require(domain).snapshots);
  }

  @Override
  public Optional<String> currentSnapshot(String domain) {
    String c = require(domain).current;
    return c.isEmpty() ? Optional.empty() : Optional.of(c);
  }

  @Override
  public void deleteSnapshotMetadata(String domain, String snapshot) {
    calls.add("delete-metadata " + snapshot);
    Domain d = require(domain);
    d.snapshots.removeIf(s -> s.name().equals(snapshot));
    if (d.current.equals(snapshot)) {
      d.current = "";
    }
  }

  @Override
  public void redefineSnapshot(String domain, String xml, boolean current) {
    Domain d = require(domain);
    // the first <name> is the snapshot's; a <parent> has its own
    String name = xml.replaceFirst("(?s)^.*?<name>([^<]+)</name>.*$", "$1");
    String parent =
        xml.contains("<parent>")
            ? xml.replaceAll("(?s).*<parent>\\s*<name>([^<]+)</name>.*", "$1")
            : null;
    calls.add("redefine " + name);
    d.snapshots.removeIf(s -> s.name().equals(name));
    d.snapshots.add(
        new SnapshotDefinition(
            name, Optional.ofNullable(parent), "running", d.snapshots.size(), xml));
    if (current) {
      d.current = name;
    }
  }

  /** A snapshot as libvirt would record it, for test set-up. */
  public void addSnapshot(String domain, String name, String parent) {
    String xml =
        "<domainsnapshot><name>"
            + name
            + "</name>"
            + (parent == null ? "" : "<parent><name>" + parent + "</name></parent>")
            + "</domainsnapshot>";
    redefineSnapshot(domain, xml, true);
  }

  @Override
  public void createSnapshot(String domain, String xml, SnapshotCreate... flags) {
    calls.add("create-snapshot");
    Domain d = require(domain);
    if (java.util.Arrays.asList(flags).contains(SnapshotCreate.DISK_ONLY)) {
      // external overlays: each named disk now runs on its overlay file
      java.util.regex.Matcher m =
          java.util.regex.Pattern.compile(
                  "<disk name='(\\w+)' snapshot='external'>.*?<source file='([^']+)'/>")
              .matcher(xml);
      while (m.find()) {
        moveDisk(d, m.group(1), m.group(2));
      }
    } else {
      String name = xml.replaceFirst("(?s)^.*?<name>([^<]+)</name>.*$", "$1");
      d.snapshots.add(
          new SnapshotDefinition(name, Optional.empty(), "running", d.snapshots.size(), xml));
    }
  }

  private static void moveDisk(Domain d, String target, String file) {
    List<DiskDefinition> disks = new ArrayList<>();
    for (DiskDefinition x : d.definition.disks()) {
      disks.add(
          x.target().equals(target)
              ? new DiskDefinition(
                  x.target(),
                  x.device(),
                  x.sourceType(),
                  Optional.of(file),
                  x.driverType(),
                  x.readOnly(),
                  x.shareable(),
                  x.bus(),
                  x.backingFiles())
              : x);
    }
    DomainDefinition def = d.definition;
    d.definition =
        new DomainDefinition(
            def.name(), def.uuid(), def.type(), def.memoryKiB(), def.vcpus(), disks, def.xml());
  }

  /** Active commits in flight: disk target -> base file. They catch up at once. */
  private final Map<String, String> commits = new ConcurrentHashMap<>();

  /** How many of the next block commits end without a pivot, as a failed job does. */
  public volatile int commitsThatVanish;

  @Override
  public void revertToSnapshot(String domain, String snapshot) {
    calls.add("revert " + snapshot);
  }

  @Override
  public void migrate(String domain, MigrationRequest request) {
    calls.add("migrate " + domain + " -> " + request.destinationUri() + " " + request.flags());
    Domain d = require(domain);
    if (!d.snapshots.isEmpty()) {
      throw new HypervisorException(
          "VIR_ERR_OPERATION_INVALID",
          "Requested operation is not valid: cannot migrate domain with "
              + d.snapshots.size()
              + " snapshots",
          null);
    }
    if (d.inactiveImages) {
      // QEMU 7.2 aborts on bdrv_inactivate_recurse when migrating out never-activated images
      domains.remove(domain);
      throw new HypervisorException(
          "VIR_ERR_OPERATION_FAILED",
          "operation failed: domain is not running (QEMU crashed: images were never activated)",
          null);
    }
    FakeHypervisor dest = cloud.byUri(request.destinationUri());
    d.bitmaps.clear(); // not needed by the fake any more
    CountDownLatch gate = migrationGate;
    if (gate != null) {
      try {
        if (!gate.await(60, TimeUnit.SECONDS)) {
          throw new HypervisorException(
              "VIR_ERR_OPERATION_TIMEOUT", "fake migration gate never opened", null);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (abortPending) {
      abortPending = false;
      throw new HypervisorException(
          "VIR_ERR_OPERATION_ABORTED",
          "operation aborted: job 'migration out' canceled by client",
          null);
    }
    RuntimeException fail = failNextMigration;
    if (fail != null) {
      failNextMigration = null;
      throw fail;
    }
    emit(domain, LifecycleEvent.Type.SUSPENDED, "MIGRATED");
    Domain arrived = new Domain(d.definition);
    arrived.state =
        request.flags().contains(MigrationFlag.PAUSED) ? DomainState.PAUSED : DomainState.RUNNING;
    arrived.inactiveImages = arrived.state == DomainState.PAUSED;
    dest.domains.put(domain, arrived);
    dest.emit(domain, LifecycleEvent.Type.STARTED, "MIGRATED");
    if (arrived.state == DomainState.PAUSED) {
      if (!dest.losePausedEvent) {
        dest.emit(domain, LifecycleEvent.Type.SUSPENDED, "PAUSED");
      }
    } else {
      dest.emit(domain, LifecycleEvent.Type.RESUMED, "MIGRATED");
    }
    CountDownLatch confirm = confirmGate;
    if (confirm != null) {
      try {
        confirm.await(60, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    domains.remove(domain);
    emit(domain, LifecycleEvent.Type.STOPPED, "MIGRATED");
  }

  @Override
  public JobStats jobStats(String domain) {
    require(domain);
    return migrationGate != null && migrationGate.getCount() > 0
        ? new JobStats(true, 10, 1000, 100, 900, 100, 0, 1, 0, 0, 0, OptionalLong.empty())
        : JobStats.none();
  }

  @Override
  public void abortJob(String domain) {
    calls.add("abort " + domain);
    aborts.incrementAndGet();
    abortPending = true;
    CountDownLatch gate = migrationGate;
    if (gate != null) {
      gate.countDown();
    }
  }

  @Override
  public void setMaxDowntime(String domain, long millis) {
    calls.add("downtime " + millis);
  }

  @Override
  public String qemuMonitorCommand(String domain, String json) {
    Domain d = require(domain);
    if (json.contains("query-block")) {
      StringBuilder sb = new StringBuilder("{\"return\":[");
      int i = 1;
      for (DiskDefinition disk : d.definition.disks()) {
        if (i > 1) {
          sb.append(',');
        }
        sb.append("{\"inserted\":{\"node-name\":\"libvirt-")
            .append(i++)
            .append("-format\",\"file\":\"")
            .append(disk.sourceFile().orElse(""))
            .append("\",\"dirty-bitmaps\":[")
            .append(
                String.join(
                    ",",
                    i == 2
                        ? d.bitmaps.stream().map(b -> "{\"name\":\"" + b + "\"}").toList()
                        : List.<String>of()))
            .append("]}}");
      }
      return sb.append("]}").toString();
    }
    if (json.contains("block-dirty-bitmap-add")) {
      d.bitmaps.add(json.replaceAll(".*\"name\":\"([^\"]+)\".*", "$1"));
    } else if (json.contains("block-dirty-bitmap-remove")) {
      d.bitmaps.remove(json.replaceAll(".*\"name\":\"([^\"]+)\".*", "$1"));
    } else if (json.contains("query-version")) {
      return "{\"return\":{\"qemu\":{\"major\":7,\"minor\":2,\"micro\":22}}}";
    } else if (json.contains("block-export-add")) {
      d.activated = true;
      d.inactiveImages = false;
    }
    calls.add("qmp " + json.replaceAll(".*\"execute\":\"([^\"]+)\".*", "$1"));
    return "{\"return\":{}}";
  }

  @Override
  public void blockCommit(
      String domain, String disk, String base, long bandwidthBytes, BlockCommit... flags) {
    calls.add(
        "commit "
            + disk
            + (java.util.Arrays.asList(flags).contains(BlockCommit.SHALLOW) ? " shallow" : ""));
    require(domain);
    commits.put(domain + "/" + disk, base);
  }

  @Override
  public Optional<BlockJob> blockJob(String domain, String disk) {
    String key = domain + "/" + disk;
    if (commits.containsKey(key) && commitsThatVanish > 0) {
      // the job ended without a pivot (QEMU cancelled it, an error): libvirt shows none
      commitsThatVanish--;
      commits.remove(key);
      return Optional.empty();
    }
    return commits.containsKey(domain + "/" + disk)
        ? Optional.of(new BlockJob(disk, 100, 100))
        : Optional.empty();
  }

  @Override
  public void blockJobAbort(String domain, String disk, boolean pivot) {
    calls.add((pivot ? "pivot " : "abort-commit ") + disk);
    String base = commits.remove(domain + "/" + disk);
    if (pivot && base != null) {
      moveDisk(require(domain), disk, base);
    }
  }

  @Override
  public HostInfo hostInfo() {
    return new HostInfo(host, 16L << 20, 8L << 30, 8, 9_000_000);
  }

  @Override
  public AutoCloseable subscribe(Consumer<LifecycleEvent> listener) {
    listeners.add(listener);
    return () -> listeners.remove(listener);
  }

  @Override
  public void close() {}

  /** Calls containing {@code word}, in order. */
  public List<String> callsWith(String word) {
    return calls.stream().filter(c -> c.contains(word)).toList();
  }

  public Set<String> snapshotNames(String domain) {
    Set<String> out = new LinkedHashSet<>();
    require(domain).snapshots.forEach(s -> out.add(s.name()));
    return out;
  }
}
