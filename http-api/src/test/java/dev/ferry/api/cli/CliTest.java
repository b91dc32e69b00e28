package dev.ferry.api.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.api.ApiFixture;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationOutcome;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The operators' CLI against the real HTTP API over a real scheduler and fake agents. */
class CliTest {
  private static final String TOKEN = "cli-token-0123456789abcdef";
  private static ApiFixture api;
  @TempDir static Path tmp;
  private static Path tokenFile;

  @BeforeAll
  static void start() throws Exception {
    api = ApiFixture.start(TOKEN);
    tokenFile = Files.writeString(tmp.resolve("api-token"), TOKEN + "\n");
  }

  @AfterAll
  static void stop() {
    api.close();
  }

  /** What one run of the CLI printed, and its exit status. */
  record Run(int status, String out, String err) {}

  private static Run ferry(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    List<String> argv =
        new ArrayList<>(
            List.of("--url", api.base, "--token-file", tokenFile.toString(), "--poll", "0.1"));
    argv.addAll(List.of(args));
    int status =
        FerryCli.run(
            argv.toArray(String[]::new),
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8),
            false);
    return new Run(
        status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  private static CompletableFuture<Run> inBackground(String... args) {
    return CompletableFuture.supplyAsync(() -> ferry(args));
  }

  @Test
  void submitWithWatchFollowsTheMigrationAndExitsZeroOnlyWhenItCompleted() throws Exception {
    CompletableFuture<Run> run = inBackground("submit", "vm-a", "host1", "host2", "--watch");
    AgentProtocol.StartMigration start = api.host1.starts.receiveMessage(Duration.ofSeconds(10));
    assertEquals("vm-a", start.vm());
    Thread.sleep(500); // the watcher sees it running
    api.host1.finish(start, MigrationOutcome.COMPLETED);
    Run r = run.get(20, TimeUnit.SECONDS);
    assertEquals(0, r.status(), r.toString());
    assertTrue(r.out().contains("vm-a        ["), "a progress line: " + r.out());
    assertTrue(r.out().contains(" completed: "), r.out());

    CompletableFuture<Run> failing = inBackground("submit", "vm-b", "host1", "host3", "--watch");
    AgentProtocol.StartMigration second = api.host1.starts.receiveMessage(Duration.ofSeconds(10));
    api.host1.finish(second, MigrationOutcome.ROLLED_BACK);
    Run f = failing.get(20, TimeUnit.SECONDS);
    assertEquals(1, f.status(), f.toString());
    assertTrue(f.out().contains(" rolled-back: "), f.out());

    Run list = ferry("list");
    assertEquals(0, list.status(), list.toString());
    assertTrue(list.out().contains("vm-a") && list.out().contains("completed"), list.out());
    assertTrue(list.out().contains("vm-b") && list.out().contains("rolled-back"), list.out());
  }

  @Test
  void aRefusalIsOneLineAndExitStatusOne() {
    Run same = ferry("submit", "vm-c", "host1", "host1");
    assertEquals(1, same.status(), same.toString());
    assertTrue(
        same.err().startsWith("ferry: refused (422): source and destination are the same host"),
        same.err());
    assertEquals(1, same.err().strip().lines().count(), same.err());

    Run unknown = ferry("watch", "m-0000000000000000");
    assertEquals(1, unknown.status(), unknown.toString());
    assertTrue(unknown.err().contains("refused (404)"), unknown.err());

    Run usage = ferry("submit", "vm-c");
    assertEquals(2, usage.status(), usage.toString());
    assertTrue(usage.err().contains("Missing required parameter"), usage.err());
  }

  @Test
  void withoutTheTokenTheApiRefuses() {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status =
        FerryCli.run(
            new String[] {
              "--url", api.base, "--token-file", tmp.resolve("missing").toString(), "hosts"
            },
            new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8),
            false);
    assertEquals(1, status);
    assertTrue(err.toString(StandardCharsets.UTF_8).contains("refused (401)"), err.toString());
  }

  @Test
  void anUnreachableApiSaysSo() {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status =
        FerryCli.run(
            new String[] {"--url", "http://127.0.0.1:1", "hosts"},
            new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8),
            false);
    assertEquals(1, status);
    assertTrue(
        err.toString(StandardCharsets.UTF_8).contains("cannot reach the Ferry API"),
        err.toString());
  }

  @Test
  void hostsDrainsAndRebalancing() {
    Run hosts = ferry("hosts");
    assertEquals(0, hosts.status(), hosts.toString());
    for (String h : List.of("host1", "host2", "host3")) {
      assertTrue(hosts.out().contains(h), hosts.out());
    }

    // host3 runs nothing: its drain completes at once, and the report says so
    Run drain = ferry("drain", "host3", "--cold-fallback", "--watch");
    assertEquals(0, drain.status(), drain.toString());
    assertTrue(drain.out().contains("of host3: completed"), drain.out());
    String id = drain.out().lines().findFirst().orElseThrow();
    Run shown = ferry("drains", id);
    assertTrue(shown.out().contains("completed"), shown.out());
    assertTrue(ferry("drains").out().contains(id), "listed");
    assertTrue(ferry("hosts").out().matches("(?s).*host3 +drained.*"), ferry("hosts").out());
    Run enabled = ferry("enable", "host3");
    assertEquals(0, enabled.status(), enabled.toString());

    Run plan = ferry("plan", "--policy", "balance", "--threshold", "0.0");
    assertEquals(0, plan.status(), plan.toString());
    assertTrue(plan.out().startsWith("balance: "), plan.out());
    Run bad = ferry("plan", "--policy", "shuffle");
    assertEquals(1, bad.status(), bad.toString());
    assertTrue(bad.err().contains("refused (400)"), bad.err());
  }
}
