package dev.ferry.node.scheduler;

import com.typesafe.config.Config;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/** {@code ferry.scheduler} from the configuration, read once and checked at start-up. */
public record SchedulerSettings(
    String role,
    int outboundPerHost,
    int inboundPerHost,
    int clusterCap,
    LinkSpec nic,
    Map<String, LinkSpec> hostNics,
    List<Segment> segments,
    double cpuOvercommit,
    long memoryHeadroom,
    double datastoreHeadroom,
    Duration cooldown,
    Duration inventoryInterval,
    Duration inventoryStaleAfter,
    int drainAttempts,
    Duration drainTick,
    int history,
    int snapshotEvery) {

  /** A link's capacity in bytes per second and how many migrations may share it. */
  public record LinkSpec(long capacity, int streams) {
    public LinkSpec {
      if (capacity <= 0 || streams <= 0) {
        throw new IllegalArgumentException(
            "a link needs a capacity and streams above 0, not " + capacity + "/" + streams);
      }
    }

    /** The share each migration on this link gets. */
    public long share() {
      return capacity / streams;
    }
  }

  /** A named network segment: a migration crosses it when exactly one of its hosts is inside. */
  public record Segment(String name, LinkSpec link, Set<String> hosts) {
    public Segment {
      // a set: admission asks whether a host is inside for every running migration, every round
      hosts = Set.copyOf(hosts);
    }

    public Segment(String name, LinkSpec link, List<String> hosts) {
      this(name, link, Set.copyOf(hosts));
    }

    boolean crossedBy(String source, String destination) {
      return hosts.contains(source) != hosts.contains(destination);
    }
  }

  public static SchedulerSettings from(Config root) {
    Config c = root.getConfig("ferry.scheduler");
    Config links = c.getConfig("links");
    LinkSpec nic = new LinkSpec(links.getBytes("nic-capacity"), links.getInt("nic-streams"));
    Map<String, LinkSpec> hostNics = new TreeMap<>();
    Config hosts = links.getConfig("hosts");
    for (String host : hosts.root().keySet()) {
      Config h = hosts.getConfig(host);
      hostNics.put(
          host,
          new LinkSpec(
              h.hasPath("capacity") ? h.getBytes("capacity") : nic.capacity(),
              h.hasPath("streams") ? h.getInt("streams") : nic.streams()));
    }
    List<Segment> segments =
        links.getConfigList("segments").stream()
            .map(
                s ->
                    new Segment(
                        s.getString("name"),
                        new LinkSpec(s.getBytes("capacity"), s.getInt("streams")),
                        s.getStringList("hosts")))
            .toList();
    Config p = c.getConfig("placement");
    SchedulerSettings settings =
        new SchedulerSettings(
            c.getString("role"),
            c.getInt("caps.outbound-per-host"),
            c.getInt("caps.inbound-per-host"),
            c.getInt("caps.cluster"),
            nic,
            hostNics,
            segments,
            p.getDouble("cpu-overcommit"),
            p.getBytes("memory-headroom"),
            p.getDouble("datastore-headroom"),
            p.getDuration("cooldown"),
            c.getDuration("inventory.interval"),
            c.getDuration("inventory.stale-after"),
            c.getInt("drain.attempts"),
            c.getDuration("drain.tick"),
            c.getInt("history"),
            c.getInt("snapshot-every"));
    if (settings.outboundPerHost < 1 || settings.inboundPerHost < 1 || settings.clusterCap < 1) {
      throw new IllegalArgumentException("ferry.scheduler.caps: every cap must be at least 1");
    }
    if (settings.drainAttempts < 1) {
      throw new IllegalArgumentException("ferry.scheduler.drain.attempts must be at least 1");
    }
    return settings;
  }

  /** The same settings with other caps (tests, benchmarks). */
  public SchedulerSettings withCaps(int outbound, int inbound, int cluster) {
    return new SchedulerSettings(
        role,
        outbound,
        inbound,
        cluster,
        nic,
        hostNics,
        segments,
        cpuOvercommit,
        memoryHeadroom,
        datastoreHeadroom,
        cooldown,
        inventoryInterval,
        inventoryStaleAfter,
        drainAttempts,
        drainTick,
        history,
        snapshotEvery);
  }

  /** The same settings with another NIC model (tests, benchmarks). */
  public SchedulerSettings withLinks(
      LinkSpec nic, Map<String, LinkSpec> hostNics, List<Segment> segments) {
    return new SchedulerSettings(
        role,
        outboundPerHost,
        inboundPerHost,
        clusterCap,
        nic,
        Map.copyOf(hostNics),
        List.copyOf(segments),
        cpuOvercommit,
        memoryHeadroom,
        datastoreHeadroom,
        cooldown,
        inventoryInterval,
        inventoryStaleAfter,
        drainAttempts,
        drainTick,
        history,
        snapshotEvery);
  }

  /** The NIC of {@code host}, in either direction. */
  public LinkSpec nicOf(String host) {
    return hostNics.getOrDefault(host, nic);
  }
}
