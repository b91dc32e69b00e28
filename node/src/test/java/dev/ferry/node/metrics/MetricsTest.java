package dev.ferry.node.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.management.ManagementServer;
import dev.ferry.node.management.ManagementSettings;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/** The agent's counters, the text format, and the management port that serves them. */
class MetricsTest {
  private static final ActorTestKit kit = ActorTestKit.create();
  private static final HttpClient http = HttpClient.newHttpClient();

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  private static MigrationResult result(
      MigrationOutcome outcome, MigrationStrategy strategy, long pausedMillis, long bytes) {
    return new MigrationResult(
        "m-1",
        "vm1",
        "h1",
        "h2",
        outcome,
        "h2",
        "",
        strategy,
        List.of(),
        null,
        pausedMillis,
        1000,
        bytes,
        0,
        0,
        List.of());
  }

  @Test
  void textFormatEscapesLabelsAndDeclaresAFamilyOnce() {
    MetricsText t = new MetricsText();
    t.family("x_total", "counter", "An x.\nSecond line.");
    t.family("x_total", "counter", "declared again: ignored");
    t.sample("x_total", Map.of("b", "say \"hi\"\\", "a", "1"), 3);
    t.sample("x_total", 0.25);
    assertEquals(
        "# HELP x_total An x.\\nSecond line.\n"
            + "# TYPE x_total counter\n"
            + "x_total{a=\"1\",b=\"say \\\"hi\\\"\\\\\"} 3\n"
            + "x_total 0.25\n",
        t.toString());
  }

  @Test
  void countsOutcomesBytesAndThePausedWindow() {
    ActorTestKit fresh = ActorTestKit.create(); // counters of its own
    EngineMetrics m = EngineMetrics.get(fresh.system());
    fresh.shutdownTestKit();
    m.finished(result(MigrationOutcome.COMPLETED, MigrationStrategy.OVERLAY, 180, 1000));
    m.finished(result(MigrationOutcome.COMPLETED, MigrationStrategy.OVERLAY, 700, 500));
    m.finished(result(MigrationOutcome.ROLLED_BACK, MigrationStrategy.SUSPEND_SYNC, 0, 10));
    MetricsText t = new MetricsText();
    m.writeTo(t);
    String text = t.toString();
    assertTrue(
        text.contains(
            "ferry_migrations_finished_total{outcome=\"completed\",strategy=\"overlay\"} 2\n"),
        text);
    assertTrue(
        text.contains(
            "ferry_migrations_finished_total{outcome=\"rolled-back\",strategy=\"suspend-sync\"} 1\n"),
        text);
    assertTrue(text.contains("ferry_migration_bytes_total{strategy=\"overlay\"} 1500\n"), text);
    // 0.18 s and 0.7 s: one in le=0.25, both in le=1; a roll-back never paused and is not counted
    assertTrue(
        text.contains("ferry_migration_paused_seconds_bucket{le=\"0.1\",strategy=\"overlay\"} 0\n"),
        text);
    assertTrue(
        text.contains(
            "ferry_migration_paused_seconds_bucket{le=\"0.25\",strategy=\"overlay\"} 1\n"),
        text);
    assertTrue(
        text.contains("ferry_migration_paused_seconds_bucket{le=\"1\",strategy=\"overlay\"} 2\n"),
        text);
    assertTrue(
        text.contains(
            "ferry_migration_paused_seconds_bucket{le=\"+Inf\",strategy=\"overlay\"} 2\n"),
        text);
    assertTrue(
        text.contains("ferry_migration_paused_seconds_count{strategy=\"overlay\"} 2\n"), text);
    assertTrue(
        text.contains("ferry_migration_paused_seconds_sum{strategy=\"overlay\"} 0.88"), text);
    assertTrue(!text.contains("paused_seconds_count{strategy=\"suspend-sync\"}"), text);
  }

  @Test
  void theManagementPortServesProbesAndMetrics() throws Exception {
    AtomicInteger scrapes = new AtomicInteger();
    AtomicBoolean ready = new AtomicBoolean(false);
    MetricsSource extra =
        text -> {
          text.family("extra_scrapes", "gauge", "Scrapes of the extra source.")
              .sample("extra_scrapes", scrapes.incrementAndGet());
          return CompletableFuture.completedFuture(null);
        };
    EngineMetrics.get(kit.system())
        .finished(result(MigrationOutcome.COMPLETED, MigrationStrategy.OVERLAY, 100, 1));
    ServerBinding b =
        ManagementServer.start(
                kit.system(), new ManagementSettings(true, "127.0.0.1", 0), ready::get, extra)
            .toCompletableFuture()
            .get();
    try {
      String base = "http://127.0.0.1:" + b.localAddress().getPort();
      assertEquals(200, get(base + "/health/live").statusCode());
      HttpResponse<String> notReady = get(base + "/health/ready");
      assertEquals(503, notReady.statusCode(), notReady.body());
      ready.set(true);
      assertEquals(200, get(base + "/health/ready").statusCode());
      HttpResponse<String> metrics = get(base + "/metrics");
      assertEquals(200, metrics.statusCode());
      assertTrue(
          metrics.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"),
          metrics.headers().toString());
      assertTrue(metrics.body().contains("extra_scrapes 1\n"), metrics.body());
      assertTrue(
          metrics.body().contains("ferry_migrations_finished_total{outcome=\"completed\""),
          metrics.body());
      assertEquals(404, get(base + "/api/v1/hosts").statusCode(), "nothing else is served");
    } finally {
      b.unbind();
    }
  }

  private static HttpResponse<String> get(String url) throws Exception {
    return http.send(
        HttpRequest.newBuilder(URI.create(url)).build(), HttpResponse.BodyHandlers.ofString());
  }
}
