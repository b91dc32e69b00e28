package dev.ferry.node.metrics;

import dev.ferry.protocol.MigrationResult;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Extension;
import org.apache.pekko.actor.typed.ExtensionId;

/**
 * What this agent's migrations did since it started, counted on the source side (the side that owns
 * a migration): outcomes, bytes sent and the paused window. One instance per actor system, so that
 * tests with several agents in one JVM keep their counts apart. Counters restart with the process,
 * as Prometheus expects of counters.
 */
public final class EngineMetrics implements Extension {
  /** Upper bounds of the paused-window buckets, in seconds. */
  static final List<Double> PAUSED_BUCKETS = List.of(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0);

  private record Key(String outcome, String strategy) implements Comparable<Key> {
    @Override
    public int compareTo(Key o) {
      int c = outcome.compareTo(o.outcome);
      return c != 0 ? c : strategy.compareTo(o.strategy);
    }
  }

  private static final class Paused {
    final long[] buckets = new long[PAUSED_BUCKETS.size()];
    long count;
    long sumMillis;
  }

  private final Map<Key, Long> finished = new TreeMap<>();
  private final Map<String, Long> bytes = new TreeMap<>();
  private final Map<String, Paused> paused = new TreeMap<>();

  private EngineMetrics() {}

  /** Counts a migration that ended on this agent as its source. */
  public synchronized void finished(MigrationResult r) {
    String strategy =
        r.strategy() == null ? "unknown" : r.strategy().name().toLowerCase().replace('_', '-');
    String outcome = r.outcome().name().toLowerCase().replace('_', '-');
    finished.merge(new Key(outcome, strategy), 1L, Long::sum);
    bytes.merge(strategy, Math.max(0, r.bytesMoved()), Long::sum);
    if (r.pausedMillis() > 0) {
      Paused p = paused.computeIfAbsent(strategy, s -> new Paused());
      double seconds = r.pausedMillis() / 1000.0;
      for (int i = 0; i < PAUSED_BUCKETS.size(); i++) {
        if (seconds <= PAUSED_BUCKETS.get(i)) {
          p.buckets[i]++;
        }
      }
      p.count++;
      p.sumMillis += r.pausedMillis();
    }
  }

  public synchronized void writeTo(MetricsText text) {
    text.family(
        "ferry_migrations_finished_total",
        "counter",
        "Migrations this agent ran as their source, by outcome and strategy.");
    finished.forEach(
        (k, n) ->
            text.sample(
                "ferry_migrations_finished_total",
                Map.of("outcome", k.outcome(), "strategy", k.strategy()),
                n));
    text.family(
        "ferry_migration_bytes_total",
        "counter",
        "Disk and memory bytes sent by this agent's finished migrations.");
    bytes.forEach((s, n) -> text.sample("ferry_migration_bytes_total", Map.of("strategy", s), n));
    text.family(
        "ferry_migration_paused_seconds",
        "histogram",
        "The paused window of this agent's migrations: paused on the source until running on the"
            + " destination (strategy cold: from the ACPI power button until booted there).");
    paused.forEach(
        (s, p) -> {
          for (int i = 0; i < PAUSED_BUCKETS.size(); i++) {
            text.sample(
                "ferry_migration_paused_seconds_bucket",
                labels(s, MetricsText.format(PAUSED_BUCKETS.get(i))),
                p.buckets[i]);
          }
          text.sample("ferry_migration_paused_seconds_bucket", labels(s, "+Inf"), p.count);
          text.sample(
              "ferry_migration_paused_seconds_sum", Map.of("strategy", s), p.sumMillis / 1000.0);
          text.sample("ferry_migration_paused_seconds_count", Map.of("strategy", s), p.count);
        });
  }

  private static Map<String, String> labels(String strategy, String le) {
    Map<String, String> m = new TreeMap<>();
    m.put("le", le);
    m.put("strategy", strategy);
    return m;
  }

  public static EngineMetrics get(ActorSystem<?> system) {
    return Id.INSTANCE.apply(system);
  }

  /** The extension's id: one {@link EngineMetrics} per actor system. */
  public static final class Id extends ExtensionId<EngineMetrics> {
    private static final Id INSTANCE = new Id();

    private Id() {}

    @Override
    public EngineMetrics createExtension(ActorSystem<?> system) {
      return new EngineMetrics();
    }
  }
}
