package dev.ferry.node.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.libvirt.Connect;
import org.libvirt.Domain;
import org.libvirt.DomainBlockJobInfo;
import org.libvirt.DomainInfo;
import org.libvirt.DomainJobStats;
import org.libvirt.DomainSnapshot;
import org.libvirt.Library;
import org.libvirt.LibvirtException;
import org.libvirt.NodeInfo;
import org.libvirt.TypedParameter;
import org.libvirt.TypedStringParameter;
import org.libvirt.TypedUlongParameter;
import org.libvirt.event.DomainEvent;
import org.libvirt.event.LifecycleListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link Hypervisor} over libvirt-java (JNA). One connection per URI, opened lazily and reopened
 * when libvirt reports it dead; read-only calls are retried once after a reconnect, calls that
 * change state are not. libvirt's default event loop runs on one daemon thread per JVM.
 */
public final class LibvirtHypervisor implements Hypervisor {
  private static final Logger log = LoggerFactory.getLogger(LibvirtHypervisor.class);
  private static final AtomicBoolean EVENT_LOOP = new AtomicBoolean();

  /** libvirt keepalive: probe every 5 s, give up after 3 unanswered probes. */
  private static final int KEEPALIVE_INTERVAL_S = 5;

  private static final int KEEPALIVE_COUNT = 3;

  /** VIR_DOMAIN_SNAPSHOT_XML_SECURE: include secure fields, as redefinition needs them. */
  private static final int SNAPSHOT_XML_SECURE = 1;

  /** VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES */
  private static final int COMMIT_BANDWIDTH_BYTES = 1 << 4;

  private static final ObjectMapper JSON = new ObjectMapper();

  private final String uri;
  private final Object lock = new Object();
  private final List<Consumer<LifecycleEvent>> listeners = new CopyOnWriteArrayList<>();
  private final LifecycleListener dispatcher = this::dispatch;
  private Connect conn;
  private boolean listening;

  public LibvirtHypervisor(String uri) {
    this.uri = uri;
    startEventLoop();
  }

  /** libvirt must have an event loop registered before the connection that wants events opens. */
  private static void startEventLoop() {
    if (!EVENT_LOOP.compareAndSet(false, true)) {
      return;
    }
    try {
      Library.initEventLoop();
    } catch (LibvirtException e) {
      throw wrap("initialising libvirt's event loop", e);
    }
    Thread loop =
        new Thread(
            () -> {
              while (true) {
                try {
                  Library.runEventLoop();
                  return;
                } catch (InterruptedException e) {
                  return;
                } catch (LibvirtException e) {
                  log.warn("libvirt event loop: {}", e.getMessage());
                }
              }
            },
            "libvirt-event-loop");
    loop.setDaemon(true);
    loop.start();
  }

  @FunctionalInterface
  private interface Call<T> {
    T apply(Connect c) throws LibvirtException;
  }

  @FunctionalInterface
  private interface DomainCall<T> {
    T apply(Domain d) throws LibvirtException;
  }

  private Connect connection() throws LibvirtException {
    synchronized (lock) {
      if (conn != null) {
        boolean alive;
        try {
          alive = conn.isAlive();
        } catch (LibvirtException e) {
          alive = false;
        }
        if (alive) {
          return conn;
        }
        log.warn("libvirt connection to {} is dead: reconnecting", uri);
        closeQuietly();
      }
      conn = new Connect(uri);
      conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT);
      if (listening) {
        conn.addLifecycleListener(dispatcher);
      }
      return conn;
    }
  }

  private void closeQuietly() {
    if (conn != null) {
      try {
        conn.close();
      } catch (LibvirtException e) {
        log.debug("closing {}: {}", uri, e.getMessage());
      }
      conn = null;
    }
  }

  /** A read-only call: retried once on a fresh connection if the connection broke. */
  private <T> T read(String what, Call<T> call) {
    try {
      return call.apply(connection());
    } catch (LibvirtException e) {
      if (!connectionBroken(e)) {
        throw wrap(what, e);
      }
      synchronized (lock) {
        closeQuietly();
      }
      try {
        return call.apply(connection());
      } catch (LibvirtException again) {
        throw wrap(what, again);
      }
    }
  }

  /** A call that changes state: never retried (it may have happened). */
  private <T> T write(String what, Call<T> call) {
    try {
      return call.apply(connection());
    } catch (LibvirtException e) {
      if (connectionBroken(e)) {
        synchronized (lock) {
          closeQuietly();
        }
      }
      throw wrap(what, e);
    }
  }

  private <T> T readDomain(String domain, String what, DomainCall<T> call) {
    return read(what + " of " + domain, c -> call.apply(c.domainLookupByName(domain)));
  }

  private void writeDomain(String domain, String what, DomainCall<?> call) {
    write(what + " " + domain, c -> call.apply(c.domainLookupByName(domain)));
  }

  private static boolean connectionBroken(LibvirtException e) {
    String code = e.getError() == null ? "" : e.getError().getCode().name();
    return code.equals("VIR_ERR_INVALID_CONN")
        || code.equals("VIR_ERR_NO_CONNECT")
        || (code.equals("VIR_ERR_INTERNAL_ERROR")
            && String.valueOf(e.getMessage()).contains("client socket is closed"));
  }

  private static HypervisorException wrap(String what, LibvirtException e) {
    String code = e.getError() == null ? "UNKNOWN" : e.getError().getCode().name();
    String msg = e.getError() == null ? e.getMessage() : e.getError().getMessage();
    return new HypervisorException(code, what + ": " + msg, e);
  }

  @Override
  public List<DomainSummary> listDomains() {
    return read(
        "listing domains",
        c -> {
          List<DomainSummary> out = new ArrayList<>();
          for (Domain d : c.listAllDomains(0)) {
            try {
              out.add(summary(d));
            } catch (LibvirtException e) {
              // a transient domain that ended (or migrated away) after the listing: gone
              if (!noDomain(e)) {
                throw e;
              }
            }
          }
          out.sort(Comparator.comparing(DomainSummary::name));
          return out;
        });
  }

  @Override
  public Optional<DomainSummary> lookup(String domain) {
    return read(
        "looking up " + domain,
        c -> {
          try {
            return Optional.of(summary(c.domainLookupByName(domain)));
          } catch (LibvirtException e) {
            if (noDomain(e)) {
              return Optional.empty();
            }
            throw e;
          }
        });
  }

  private static boolean noDomain(LibvirtException e) {
    return e.getError() != null && e.getError().getCode().name().equals("VIR_ERR_NO_DOMAIN");
  }

  private static DomainSummary summary(Domain d) throws LibvirtException {
    DomainInfo info = d.getInfo();
    return new DomainSummary(
        d.getName(),
        d.getUUIDString(),
        state(info.state),
        d.isPersistent() == 1,
        info.maxMem,
        info.nrVirtCpu);
  }

  private static DomainState state(DomainInfo.DomainState s) {
    return switch (s) {
      case VIR_DOMAIN_RUNNING -> DomainState.RUNNING;
      case VIR_DOMAIN_BLOCKED -> DomainState.BLOCKED;
      case VIR_DOMAIN_PAUSED -> DomainState.PAUSED;
      case VIR_DOMAIN_SHUTDOWN -> DomainState.SHUTDOWN;
      case VIR_DOMAIN_SHUTOFF -> DomainState.SHUTOFF;
      case VIR_DOMAIN_CRASHED -> DomainState.CRASHED;
      case VIR_DOMAIN_PMSUSPENDED -> DomainState.PMSUSPENDED;
      default -> DomainState.NOSTATE;
    };
  }

  @Override
  public DomainDefinition definition(String domain, boolean inactive) {
    String xml =
        readDomain(
            domain,
            "reading the definition",
            d -> d.getXMLDesc(inactive ? Domain.XMLFlags.INACTIVE : 0));
    return DomainXml.parseDomain(xml);
  }

  @Override
  public void define(String xml) {
    write("defining a domain", c -> c.domainDefineXML(xml));
  }

  @Override
  public void start(String domain) {
    writeDomain(domain, "starting", Domain::create);
  }

  @Override
  public void suspend(String domain) {
    writeDomain(
        domain,
        "suspending",
        d -> {
          d.suspend();
          return null;
        });
  }

  @Override
  public void resume(String domain) {
    writeDomain(
        domain,
        "resuming",
        d -> {
          d.resume();
          return null;
        });
  }

  @Override
  public void destroy(String domain) {
    writeDomain(
        domain,
        "destroying",
        d -> {
          d.destroy();
          return null;
        });
  }

  @Override
  public void shutdown(String domain) {
    writeDomain(
        domain,
        "shutting down",
        d -> {
          d.shutdown();
          return null;
        });
  }

  @Override
  public void undefine(String domain) {
    writeDomain(
        domain,
        "undefining",
        d -> {
          d.undefine(Domain.UndefineFlags.SNAPSHOTS_METADATA);
          return null;
        });
  }

  @Override
  public List<SnapshotDefinition> snapshots(String domain) {
    List<SnapshotDefinition> all =
        readDomain(
            domain,
            "listing snapshots",
            d -> {
              List<SnapshotDefinition> out = new ArrayList<>();
              for (String name : d.snapshotListNames(0)) {
                DomainSnapshot s = d.snapshotLookupByName(name);
                out.add(DomainXml.parseSnapshot(s.getXMLDesc(SNAPSHOT_XML_SECURE)));
              }
              return out;
            });
    return topological(all);
  }

  /** Parents before children; siblings by creation time, then name. */
  static List<SnapshotDefinition> topological(List<SnapshotDefinition> all) {
    Map<String, SnapshotDefinition> byName = new LinkedHashMap<>();
    all.stream()
        .sorted(
            Comparator.comparingLong(SnapshotDefinition::creationTime)
                .thenComparing(SnapshotDefinition::name))
        .forEach(s -> byName.put(s.name(), s));
    List<SnapshotDefinition> ordered = new ArrayList<>();
    Map<String, Boolean> done = new HashMap<>();
    for (SnapshotDefinition s : byName.values()) {
      visit(s, byName, done, ordered);
    }
    return ordered;
  }

  private static void visit(
      SnapshotDefinition s,
      Map<String, SnapshotDefinition> byName,
      Map<String, Boolean> done,
      List<SnapshotDefinition> ordered) {
    if (done.containsKey(s.name())) {
      return;
    }
    done.put(s.name(), true);
    s.parent().map(byName::get).ifPresent(p -> visit(p, byName, done, ordered));
    ordered.add(s);
  }

  @Override
  public Optional<String> currentSnapshot(String domain) {
    return readDomain(
        domain,
        "reading the current snapshot",
        d -> {
          if (d.hasCurrentSnapshot() != 1) {
            return Optional.empty();
          }
          return Optional.of(DomainXml.parseSnapshot(d.snapshotCurrent().getXMLDesc()).name());
        });
  }

  @Override
  public void deleteSnapshotMetadata(String domain, String snapshot) {
    writeDomain(
        domain,
        "deleting metadata of snapshot " + snapshot + " of",
        d ->
            d.snapshotLookupByName(snapshot)
                .delete(DomainSnapshot.SnapshotDeleteFlags.METADATA_ONLY));
  }

  @Override
  public void redefineSnapshot(String domain, String xml, boolean current) {
    int flags = Domain.SnapshotCreateFlags.REDEFINE;
    if (current) {
      flags |= Domain.SnapshotCreateFlags.CURRENT;
    }
    int f = flags;
    writeDomain(domain, "redefining a snapshot of", d -> d.snapshotCreateXML(xml, f));
  }

  @Override
  public void createSnapshot(String domain, String xml, SnapshotCreate... flags) {
    int bits = 0;
    for (SnapshotCreate flag : flags) {
      bits |=
          switch (flag) {
            case DISK_ONLY -> Domain.SnapshotCreateFlags.DISK_ONLY;
            case NO_METADATA -> Domain.SnapshotCreateFlags.NO_METADATA;
            case ATOMIC -> Domain.SnapshotCreateFlags.ATOMIC;
            case REUSE_EXTERNAL -> Domain.SnapshotCreateFlags.REUSE_EXT;
          };
    }
    int f = bits;
    writeDomain(domain, "creating a snapshot of", d -> d.snapshotCreateXML(xml, f));
  }

  @Override
  public void revertToSnapshot(String domain, String snapshot) {
    writeDomain(
        domain,
        "reverting to snapshot " + snapshot + " of",
        d -> d.revertToSnapshot(d.snapshotLookupByName(snapshot)));
  }

  @Override
  public void migrate(String domain, MigrationRequest request) {
    List<TypedParameter> params = new ArrayList<>();
    // libvirt-java cannot pass an empty parameter array; naming the domain is always harmless
    params.add(new TypedStringParameter("destination_name", domain));
    request.bandwidthMiBps().ifPresent(b -> params.add(new TypedUlongParameter("bandwidth", b)));
    for (String disk : request.migrateDisks()) {
      params.add(new TypedStringParameter("migrate_disks", disk));
    }
    request
        .destinationXml()
        .ifPresent(x -> params.add(new TypedStringParameter("destination_xml", x)));
    int flags = 0;
    for (MigrationFlag flag : request.flags()) {
      flags |= flag.bit();
    }
    int f = flags;
    TypedParameter[] p = params.toArray(new TypedParameter[0]);
    log.info("migrating {} to {} flags={}", domain, request.destinationUri(), request.flags());
    writeDomain(domain, "migrating", d -> d.migrateToURI(request.destinationUri(), p, f));
  }

  @Override
  public JobStats jobStats(String domain) {
    return readDomain(domain, "reading job statistics", d -> jobStats(d.getJobStats(0)));
  }

  static JobStats jobStats(DomainJobStats stats) {
    if (stats == null || stats.type == Domain.JobType.NONE) {
      return JobStats.none();
    }
    Map<String, Long> v = new HashMap<>();
    if (stats.stats != null) {
      for (TypedParameter p : stats.stats) {
        try {
          v.put(p.field, Long.parseLong(p.getValueAsString()));
        } catch (NumberFormatException e) {
          // string or double fields: not needed
        }
      }
    }
    boolean active = stats.type == Domain.JobType.BOUNDED || stats.type == Domain.JobType.UNBOUNDED;
    return new JobStats(
        active,
        v.getOrDefault("time_elapsed", 0L),
        v.getOrDefault("memory_total", 0L),
        v.getOrDefault("memory_processed", 0L),
        v.getOrDefault("memory_remaining", 0L),
        v.getOrDefault("memory_bps", 0L),
        v.getOrDefault("memory_dirty_rate", 0L),
        v.getOrDefault("memory_iteration", 0L),
        v.getOrDefault("disk_total", 0L),
        v.getOrDefault("disk_processed", 0L),
        v.getOrDefault("disk_remaining", 0L),
        v.containsKey("downtime") ? OptionalLong.of(v.get("downtime")) : OptionalLong.empty());
  }

  @Override
  public void abortJob(String domain) {
    writeDomain(domain, "aborting the job of", Domain::abortJob);
  }

  @Override
  public void setMaxDowntime(String domain, long millis) {
    writeDomain(domain, "setting max downtime of", d -> d.migrateSetMaxDowntime(millis));
  }

  @Override
  public String qemuMonitorCommand(String domain, String json) {
    String reply =
        write(
            "QMP command on " + domain,
            c -> c.domainLookupByName(domain).qemuMonitorCommand(json, 0));
    // libvirt hands QEMU's error replies back as a normal string: make them errors
    JsonNode error;
    try {
      error = JSON.readTree(reply).get("error");
    } catch (IOException e) {
      throw new HypervisorException(
          "QMP_REPLY", "unparseable QMP reply from " + domain + ": " + reply, e);
    }
    if (error != null) {
      throw new HypervisorException(
          "QMP_" + error.path("class").asText("Error"),
          "QMP " + json + " on " + domain + ": " + error.path("desc").asText(reply),
          null);
    }
    return reply;
  }

  @Override
  public void blockCommit(
      String domain, String disk, String base, long bandwidthBytes, BlockCommit... flags) {
    int bits = 0;
    for (BlockCommit flag : Set.of(flags)) {
      bits |=
          switch (flag) {
            case ACTIVE -> Domain.BlockCommitFlags.ACTIVE;
            case SHALLOW -> Domain.BlockCommitFlags.SHALLOW;
          };
    }
    if (bandwidthBytes > 0) {
      bits |= COMMIT_BANDWIDTH_BYTES;
    }
    int f = bits;
    writeDomain(
        domain,
        "committing " + disk + " of",
        d -> {
          d.blockCommit(disk, base, null, Math.max(0, bandwidthBytes), f);
          return null;
        });
  }

  @Override
  public Optional<BlockJob> blockJob(String domain, String disk) {
    return readDomain(
        domain,
        "reading the block job on " + disk + " of",
        d -> {
          DomainBlockJobInfo info = d.getBlockJobInfo(disk, 0);
          if (info == null || (info.type == 0 && info.end == 0)) {
            return Optional.empty();
          }
          return Optional.of(new BlockJob(disk, info.cur, info.end));
        });
  }

  @Override
  public void blockJobAbort(String domain, String disk, boolean pivot) {
    writeDomain(
        domain,
        (pivot ? "pivoting " : "aborting the block job on ") + disk + " of",
        d -> {
          d.blockJobAbort(disk, pivot ? Domain.BlockJobAbortFlags.PIVOT : 0);
          return null;
        });
  }

  @Override
  public HostInfo hostInfo() {
    return read(
        "reading host information",
        c -> {
          NodeInfo n = c.nodeInfo();
          return new HostInfo(
              c.getHostName(), n.memory, c.getFreeMemory(), n.cpus, c.getLibVersion());
        });
  }

  @Override
  public AutoCloseable subscribe(Consumer<LifecycleEvent> listener) {
    listeners.add(listener);
    synchronized (lock) {
      if (!listening) {
        listening = true;
        try {
          connection().addLifecycleListener(dispatcher);
        } catch (LibvirtException e) {
          listening = false;
          listeners.remove(listener);
          throw wrap("subscribing to lifecycle events", e);
        }
      }
    }
    return () -> listeners.remove(listener);
  }

  private int dispatch(Domain domain, DomainEvent event) {
    String name;
    try {
      name = domain.getName();
    } catch (LibvirtException e) {
      log.debug("lifecycle event for an unnamed domain: {}", e.getMessage());
      return 0;
    }
    Object detail = event.getDetail();
    LifecycleEvent e =
        new LifecycleEvent(
            name,
            LifecycleEvent.Type.valueOf(event.getType().name()),
            detail == null ? "UNKNOWN" : detail.toString(),
            Instant.now());
    for (Consumer<LifecycleEvent> l : listeners) {
      try {
        l.accept(e);
      } catch (RuntimeException ex) {
        log.warn("lifecycle listener failed on {}: {}", e, ex.toString());
      }
    }
    return 0;
  }

  @Override
  public void close() {
    synchronized (lock) {
      closeQuietly();
    }
  }
}
