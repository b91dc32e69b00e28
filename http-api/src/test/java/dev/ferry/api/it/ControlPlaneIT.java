package dev.ferry.api.it;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.testbed.Cluster;
import dev.ferry.node.testbed.GuestChecks;
import dev.ferry.node.testbed.Testbed;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The control plane end to end on the real test bed: three hypervisor hosts with their agents, a
 * control node (scheduler + API) in the root namespace, the OpenNebula driver run inside a host,
 * and a drain that survives a SIGKILL of the scheduler's node.
 */
class ControlPlaneIT {
  private static final List<String> HOSTS = List.of("host1", "host2", "host3");
  private static final String TOKEN = "ci-token-" + Long.toHexString(System.nanoTime()) + "abcdef";
  private static final ObjectMapper json = new ObjectMapper();
  private static HttpClient http = HttpClient.newHttpClient();
  private static Testbed bed;
  private static Cluster cluster;
  private static ControlNode control;
  private static GuestChecks checks;
  private final List<String> vms = new ArrayList<>();

  @BeforeAll
  static void up() {
    bed = Testbed.shared(3);
    cluster = Cluster.start(bed, "", "host1", "host2", "host3");
    checks = new GuestChecks(bed);
    // one migration out of a host at a time: a drain is a queue, and the kill lands mid-queue
    control =
        new ControlNode(
            bed,
            TOKEN,
            "ferry.scheduler.caps.outbound-per-host = 1\n"
                + "ferry.scheduler.inventory.interval = 1s\n"
                + "ferry.scheduler.inventory.stale-after = 20s");
    control.wipe();
    control.start();
    http = control.httpClient();
    await()
        .atMost(Duration.ofSeconds(60))
        .pollInterval(Duration.ofMillis(500))
        .until(() -> hostsKnown() == 3);
  }

  @AfterAll
  static void down() {
    if (control != null) {
      control.stop();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  @AfterEach
  void removeVms() {
    for (String vm : vms) {
      for (String h : HOSTS) {
        bed.removeVm(h, vm);
      }
    }
  }

  private static int hostsKnown() {
    try {
      HttpResponse<String> r = call("GET", "/api/v1/hosts", null);
      return r.statusCode() == 200 ? json.readTree(r.body()).get("hosts").size() : 0;
    } catch (Exception e) {
      return 0;
    }
  }

  static HttpResponse<String> call(String method, String path, String body) throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(control.url() + path))
            .timeout(Duration.ofSeconds(30))
            .header("Authorization", "Bearer " + TOKEN)
            .method(
                method,
                body == null
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(body));
    if (body != null) {
      b.header("Content-Type", "application/json");
    }
    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  /** POSTs {@code body} to the API, expects 202 Accepted and returns the answer. */
  private static JsonNode accepted(String path, String body) throws Exception {
    HttpResponse<String> r = call("POST", path, body);
    assertEquals(202, r.statusCode(), path + ": " + r.body());
    return json.readTree(r.body());
  }

  private static String get(String url) throws Exception {
    HttpResponse<String> r =
        http.send(
            HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30)).build(),
            HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode(), url + ": " + r.body());
    return r.body();
  }

  private ProcessRunner.Output driver(String host, String... args) throws Exception {
    // the token reaches the driver in a file, never in an argv
    Path etc = bed.hostDir(host).resolve("etc-ferry");
    Files.createDirectories(etc);
    Files.writeString(etc.resolve("ci-token"), TOKEN + "\n");
    Files.copy(control.caFile(), etc.resolve("api-ca.crt"), StandardCopyOption.REPLACE_EXISTING);
    List<String> argv =
        new ArrayList<>(
            List.of(
                "env",
                "FERRY_URL=" + control.url(),
                "FERRY_API_TOKEN_FILE=/etc/ferry/ci-token",
                "FERRY_CA_FILE=/etc/ferry/api-ca.crt",
                "FERRY_PROGRESS_EVERY=0",
                "FERRY_POLL=1",
                bed.repo().resolve("drivers/opennebula/migrate").toString()));
    argv.addAll(List.of(args));
    return bed.exec(host, argv.toArray(String[]::new));
  }

  /**
   * OpenNebula's call, inside the source host: the driver queues the migration, prints progress to
   * stderr and exits 0 once the destination acknowledged; the snapshot survives. A VM that is not
   * there ends with exit 1 and a one-line reason.
   */
  @Test
  void theOpenNebulaDriverMigratesAndReportsFailures() throws Exception {
    String vm = "one-7";
    vms.add(vm);
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "16", "--snapshots", "1");
    await()
        .atMost(Duration.ofSeconds(30))
        .until(() -> call("GET", "/api/v1/hosts", null).body().contains("\"vms\":1"));

    ProcessRunner.Output out = driver("host1", vm, "host2", "host1");
    String stderr = out.result().stderrTail();
    assertEquals(0, out.result().exitCode(), stderr);
    assertTrue(stderr.contains("completed: " + vm + " runs on host2"), stderr);
    assertTrue(stderr.lines().anyMatch(l -> l.matches(".* m-\\w+ [a-z-]+ .*eta.*")), stderr);
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host2", vm));
    checks.revertWorks("host2", vm, "snap-0");

    // the source's agent counted it; the control node reports the scheduler's view
    String agentMetrics = bed.execOk("host1", "curl", "-sf", "http://127.0.0.1:8558/metrics");
    List<String> agentLines = agentMetrics.lines().toList();
    assertTrue(
        agentLines.contains(
            "ferry_migrations_finished_total{outcome=\"completed\",strategy=\"overlay\"} 1"),
        agentMetrics);
    assertTrue(
        agentLines.contains("ferry_migration_paused_seconds_count{strategy=\"overlay\"} 1"),
        agentMetrics);
    assertEquals(
        "ready", bed.execOk("host2", "curl", "-sf", "http://127.0.0.1:8558/health/ready").strip());
    String controlMetrics = get(control.managementUrl() + "/metrics");
    assertTrue(controlMetrics.contains("ferry_scheduler_up 1\n"), controlMetrics);
    for (String h : HOSTS) {
      assertTrue(
          controlMetrics.contains("ferry_host_state{host=\"" + h + "\",state=\"active\"} 1\n"),
          controlMetrics);
    }

    ProcessRunner.Output missing = driver("host1", "one-404", "host2", "host1");
    assertEquals(1, missing.result().exitCode());
    String reason = missing.result().stderrTail().strip();
    assertTrue(reason.startsWith("ferry migrate: refused (422)"), reason);
    assertTrue(reason.contains("one-404 is not running on host1"), reason);
    assertEquals(1, reason.lines().count(), reason);

    ProcessRunner.Output bad = driver("host1", "one-7;reboot", "host2", "host1");
    assertEquals(1, bad.result().exitCode());
    assertTrue(bad.result().stderrTail().contains("invalid deploy id"));
  }

  /**
   * Drain host1 (four guests, one migration out of it at a time) through the API; SIGKILL the
   * control node (the scheduler singleton's only host) while the first migration runs; start it
   * again. The scheduler recovers the drain from its journal, learns how the running migration
   * ended from the agent, and finishes the queue. An observer polling the API all along never sees
   * more than one migration out of host1; every guest ends on another host with its snapshot and
   * every write, moved by exactly one completed migration.
   */
  @Test
  void aDrainSurvivesAKilledScheduler() throws Exception {
    List<String> guests = List.of("dr-a", "dr-b", "dr-c", "dr-d");
    for (String vm : guests) {
      vms.add(vm);
      bed.mkvm("host1", vm, "--mem", "128", "--prefill", "16", "--snapshots", "1");
    }
    await().atMost(Duration.ofSeconds(30)).until(() -> hostVms("host1") == guests.size());

    ConcurrencyObserver observer = new ConcurrencyObserver();
    String id = accepted("/api/v1/hosts/host1/drain", "{}").get("id").asText();
    JsonNode drain;
    try {
      await()
          .atMost(Duration.ofMinutes(2))
          .pollInterval(Duration.ofMillis(300))
          .until(() -> statuses(id).containsValue("running"));
      Map<String, String> before = statuses(id);
      assertEquals(
          1, before.values().stream().filter(s -> s.equals("running")).count(), before.toString());

      control.kill9();
      // as systemd would (RestartSec): the crashed incarnation is downed and removed first
      awaitControlRemoved();
      control.start();

      drain =
          await()
              .atMost(Duration.ofMinutes(10))
              .pollInterval(Duration.ofSeconds(1))
              .until(() -> drain(id), d -> d != null && !d.get("state").asText().equals("running"));
    } finally {
      observer.close();
    }
    assertEquals("completed", drain.get("state").asText(), drain.toString());
    assertEquals(1, observer.maxOutOfHost1, "at most one migration out of host1 at once");
    assertTrue(observer.samples > 20, "observed throughout: " + observer.samples + " samples");
    JsonNode jobs =
        json.readTree(call("GET", "/api/v1/migrations?limit=10000", null).body()).get("jobs");
    for (JsonNode line : drain.get("vms")) {
      String vm = line.get("vm").asText();
      String host = line.get("destination").asText();
      assertEquals("moved", line.get("status").asText(), line.toString());
      List<String> completed = new ArrayList<>();
      jobs.forEach(
          j -> {
            if (j.get("request").get("vm").asText().equals(vm)
                && j.get("state").asText().equals("completed")) {
              completed.add(j.get("id").asText());
            }
          });
      assertEquals(1, completed.size(), vm + " moved exactly once: " + completed);
      checks.runsOnlyOn(vm, host, HOSTS);
      assertEquals(List.of("snap-0"), checks.libvirtSnapshots(host, vm));
      checks.noWriteLost(
          host, vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
    }
    HttpResponse<String> hosts = call("GET", "/api/v1/hosts", null);
    assertTrue(hosts.body().contains("\"host\":\"host1\",\"state\":\"drained\""), hosts.body());
    assertEquals(200, call("POST", "/api/v1/hosts/host1/enable", null).statusCode());
  }

  /**
   * Polls the running migrations through the API every 200 ms and keeps the highest number seen out
   * of host1. Polls while the control node is down simply fail.
   */
  private static final class ConcurrencyObserver implements AutoCloseable {
    volatile int maxOutOfHost1;
    volatile int samples;
    private final java.util.concurrent.ScheduledExecutorService timer =
        java.util.concurrent.Executors.newSingleThreadScheduledExecutor();

    ConcurrencyObserver() {
      timer.scheduleWithFixedDelay(
          this::sample, 0, 200, java.util.concurrent.TimeUnit.MILLISECONDS);
    }

    private void sample() {
      try {
        HttpResponse<String> r = call("GET", "/api/v1/migrations?active=true", null);
        if (r.statusCode() != 200) {
          return;
        }
        int out = 0;
        for (JsonNode j : json.readTree(r.body()).get("jobs")) {
          if (j.get("state").asText().equals("running")
              && j.get("request").get("source").asText().equals("host1")) {
            out++;
          }
        }
        maxOutOfHost1 = Math.max(maxOutOfHost1, out);
        samples++;
      } catch (Exception e) {
        // the control node is down (killed on purpose) or restarting
      }
    }

    @Override
    public void close() {
      timer.shutdownNow();
    }
  }

  /**
   * A drain with cold fallback: host1 holds a guest that migrates live and one with an ivshmem
   * device, which QEMU refuses to migrate. The first moves live; every live attempt of the second
   * rolls back (it keeps running on host1), then it is moved cold: powered off by the ACPI button,
   * copied, booted on its destination with its snapshot metadata. Its cold boot there finds every
   * record it wrote up to the power-off, and its internal snapshot still reverts.
   */
  @Test
  void aDrainWithColdFallbackMovesAGuestThatCannotMigrateLiveCold() throws Exception {
    String live = "cf-live";
    String stuck = "cf-shm";
    vms.add(live);
    vms.add(stuck);
    bed.mkvm("host1", live, "--mem", "128", "--prefill", "16", "--snapshots", "1");
    bed.mkvm("host1", stuck, "--mem", "128", "--prefill", "16", "--snapshots", "1", "--shmem");
    await().atMost(Duration.ofSeconds(30)).until(() -> hostVms("host1") == 2);

    String id = accepted("/api/v1/hosts/host1/drain", "{\"coldFallback\":true}").get("id").asText();
    JsonNode drain;
    try {
      drain =
          await()
              .atMost(Duration.ofMinutes(8))
              .pollInterval(Duration.ofSeconds(1))
              .until(() -> drain(id), d -> d != null && !d.get("state").asText().equals("running"));
    } finally {
      call("POST", "/api/v1/hosts/host1/enable", null);
    }
    assertEquals("completed", drain.get("state").asText(), drain.toString());
    Map<String, JsonNode> lines = new HashMap<>();
    drain.get("vms").forEach(l -> lines.put(l.get("vm").asText(), l));
    assertEquals("moved", lines.get(live).get("status").asText(), drain.toString());
    assertEquals(1, lines.get(live).get("attempts").asInt(), drain.toString());
    assertEquals("moved", lines.get(stuck).get("status").asText(), drain.toString());

    // the live attempts rolled back because QEMU refused; the last move was cold
    JsonNode jobs = json.readTree(call("GET", "/api/v1/migrations", null).body()).get("jobs");
    List<JsonNode> ofStuck = new ArrayList<>();
    jobs.forEach(
        j -> {
          if (j.get("request").get("vm").asText().equals(stuck)) {
            ofStuck.add(j);
          }
        });
    JsonNode cold =
        json.readTree(
            call("GET", "/api/v1/migrations/" + lines.get(stuck).get("jobId").asText(), null)
                .body());
    assertEquals("cold", cold.get("request").get("options").get("strategy").asText(), cold + "");
    assertEquals("completed", cold.get("state").asText(), cold.toString());
    assertTrue(cold.get("result").get("message").asText().contains("moved cold"), cold + "");
    List<JsonNode> liveAttempts =
        ofStuck.stream()
            .filter(j -> !j.get("id").asText().equals(cold.get("id").asText()))
            .toList();
    assertTrue(!liveAttempts.isEmpty(), "live attempts before the cold move: " + ofStuck);
    for (JsonNode j : liveAttempts) {
      assertEquals("rolled-back", j.get("state").asText(), j.toString());
      assertTrue(j.get("result").get("message").asText().contains("ivshmem"), j.toString());
    }

    String landed = lines.get(stuck).get("destination").asText();
    checks.runsOnlyOn(stuck, landed, HOSTS);
    assertEquals(List.of("snap-0"), checks.libvirtSnapshots(landed, stuck));
    // every write up to the power-off on host1 is in the file its cold boot on landed checked
    long lastWritten =
        bed.console("host1", stuck)
            .lastShutdownRecord()
            .orElseThrow(() -> new AssertionError(stuck + " did not power off cleanly on host1"));
    var console = bed.console(landed, stuck);
    await().atMost(Duration.ofSeconds(90)).until(() -> console.readyCount() > 0);
    List<dev.ferry.node.testbed.GuestConsole.BootCheck> boot = console.lastBootChecks();
    assertEquals(1, boot.size(), boot.toString());
    assertEquals(lastWritten, boot.get(0).lastOnDisk(), "records up to the power-off: " + boot);
    assertEquals(0, boot.get(0).bad(), boot.toString());
    assertTrue(boot.get(0).ok() > 0, boot.toString());
    checks.revertWorks(landed, stuck, "snap-0");

    String liveLanded = lines.get(live).get("destination").asText();
    checks.runsOnlyOn(live, liveLanded, HOSTS);
    assertEquals(List.of("snap-0"), checks.libvirtSnapshots(liveLanded, live));
  }

  /**
   * Rebalancing on real hosts: two guests on host2, none elsewhere. The dry run proposes moving one
   * (its cost in bytes, its gain), applying it migrates that VM with its snapshot, and the VM is
   * then in cooldown: the next plan does not move it again.
   */
  @Test
  void aRebalancePlanIsAppliedAndRespectsTheCooldown() throws Exception {
    for (String vm : List.of("rb-a", "rb-b")) {
      vms.add(vm);
      bed.mkvm("host2", vm, "--mem", "256", "--prefill", "16", "--snapshots", "1");
    }
    await()
        .atMost(Duration.ofSeconds(30))
        .until(
            () -> {
              JsonNode hosts = json.readTree(call("GET", "/api/v1/hosts", null).body());
              int total = 0;
              for (JsonNode h : hosts.get("hosts")) {
                total += h.get("vms").asInt();
              }
              return total == 2 && hosts.toString().contains("\"host\":\"host2\"");
            });
    String request = "{\"policy\":\"balance\",\"threshold\":0.02,\"maxMoves\":1}";
    HttpResponse<String> plan = call("POST", "/api/v1/rebalance/plan", request);
    assertEquals(200, plan.statusCode(), plan.body());
    JsonNode moves = json.readTree(plan.body()).get("moves");
    assertEquals(1, moves.size(), plan.body());
    assertEquals("host2", moves.get(0).get("source").asText());
    assertTrue(moves.get(0).get("bytes").asLong() > 256L << 20, plan.body());
    assertTrue(moves.get(0).get("benefit").asDouble() > 0, plan.body());

    HttpResponse<String> applied = call("POST", "/api/v1/rebalance/apply", request);
    assertEquals(200, applied.statusCode(), applied.body());
    JsonNode move = json.readTree(applied.body()).get("moves").get(0);
    String jobId = move.get("jobId").asText();
    String vm = move.get("vm").asText();
    JsonNode job =
        await()
            .atMost(Duration.ofMinutes(4))
            .pollInterval(Duration.ofSeconds(1))
            .until(
                () -> json.readTree(call("GET", "/api/v1/migrations/" + jobId, null).body()),
                j ->
                    j.has("state")
                        && !List.of("queued", "running").contains(j.get("state").asText()));
    assertEquals("completed", job.get("state").asText(), job.toString());
    assertEquals("rebalance", job.get("request").get("priority").asText());
    String landed = job.get("result").get("runningOn").asText();
    checks.runsOnlyOn(vm, landed, HOSTS);
    assertEquals(List.of("snap-0"), checks.libvirtSnapshots(landed, vm));

    // what is left on host2 may not move (it is alone); the moved VM is in cooldown
    HttpResponse<String> again =
        call("POST", "/api/v1/rebalance/plan", "{\"policy\":\"balance\",\"threshold\":0.0}");
    assertTrue(
        !json.readTree(again.body()).get("moves").toString().contains("\"vm\":\"" + vm + "\""),
        again.body());
  }

  /**
   * A drain with a deadline, on real hosts, one move out of a host at a time and copies slowed to 1
   * MiB/s: when the deadline passes, the queued move is given up, and the running one, still in its
   * copy, rolls back instead of starting its switchover. The drain ends partial; both guests keep
   * running on the drained host with their snapshot and every write.
   */
  @Test
  void aDrainsDeadlineGivesUpQueuedMovesAndRollsBackUnfinishedOnes() throws Exception {
    List<String> guests = List.of("dl-a", "dl-b");
    for (String vm : guests) {
      vms.add(vm);
      bed.mkvm("host3", vm, "--mem", "128", "--prefill", "16", "--snapshots", "1");
    }
    await().atMost(Duration.ofSeconds(30)).until(() -> hostVms("host3") == 2);
    String deadline = java.time.Instant.now().plusSeconds(8).toString();
    String id =
        accepted(
                "/api/v1/hosts/host3/drain",
                "{\"deadline\":\"" + deadline + "\",\"options\":{\"bandwidth\":1048576}}")
            .get("id")
            .asText();
    try {
      JsonNode drain =
          await()
              .atMost(Duration.ofMinutes(4))
              .pollInterval(Duration.ofSeconds(1))
              .until(
                  () -> drain(id),
                  d ->
                      d != null
                          && !d.get("state").asText().equals("running")
                          && !d.toString().contains("\"status\":\"running\""));
      assertEquals("partial", drain.get("state").asText(), drain.toString());
      Map<String, String> statuses = statuses(id);
      assertTrue(statuses.containsValue("given-up"), "the queued move was given up: " + drain);
      assertTrue(!statuses.containsValue("moved"), "nothing moved after the deadline: " + drain);
      for (String vm : guests) {
        checks.runsOnlyOn(vm, "host3", HOSTS);
        assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host3", vm));
        checks.noWriteLost(
            "host3", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
      }
    } finally {
      call("POST", "/api/v1/hosts/host3/enable", null);
    }
  }

  /**
   * The status page in headless Chromium, against the running control node: it lists the hosts,
   * shows a migration while it runs (state and progress bar from the SSE overview stream) and then
   * as completed. Screenshots stay in target/ as artifacts of the run.
   */
  @Test
  void theStatusPageShowsAMigrationUntilItCompletes() throws Exception {
    String vm = "one-page";
    vms.add(vm);
    bed.mkvm("host2", vm, "--mem", "128", "--prefill", "32");
    await().atMost(Duration.ofSeconds(30)).until(() -> hostVms("host2") == 1);
    try (HeadlessChromium browser =
        HeadlessChromium.start("--ignore-certificate-errors-spki-list=" + control.spkiPin())) {
      browser.open(control.url() + "/status#token=" + TOKEN);
      await()
          .atMost(Duration.ofSeconds(30))
          .pollInterval(Duration.ofMillis(250))
          .until(
              () ->
                  browser
                      .eval("return document.querySelectorAll('#hosts tr[data-host]').length")
                      .asInt(),
              n -> n == HOSTS.size());
      assertEquals(
          "", browser.eval("return location.hash").asText(), "the token left the address bar");

      accepted(
          "/api/v1/migrations",
          "{\"vm\":\"" + vm + "\",\"source\":\"host2\",\"destination\":\"host3\"}");
      String row = "document.querySelector('tr[data-vm=\"" + vm + "\"]')";
      Set<String> seen = new LinkedHashSet<>();
      boolean shotWhileRunning = false;
      long end = System.currentTimeMillis() + Duration.ofMinutes(4).toMillis();
      String state = "";
      while (!state.equals("completed") && System.currentTimeMillis() < end) {
        state = browser.eval("const r = " + row + "; return r ? r.dataset.state : ''").asText();
        if (!state.isEmpty()) {
          seen.add(state);
        }
        if (state.equals("running") && !shotWhileRunning) {
          browser.screenshot(Path.of("target", "status-page-running.png"));
          shotWhileRunning = true;
        }
        Thread.sleep(250);
      }
      browser.screenshot(Path.of("target", "status-page.png"));
      assertEquals("completed", state, "the page's last state; seen " + seen);
      assertTrue(seen.contains("running"), "the page showed it running: " + seen);
      assertTrue(
          browser.eval("return " + row + ".textContent").asText().contains("host3"),
          "the row names where it runs now");
      assertTrue(Files.size(Path.of("target", "status-page.png")) > 10_000, "a real screenshot");
    }
    checks.runsOnlyOn(vm, "host3", HOSTS);
  }

  /**
   * The operators' CLI as installed: scripts/ferry in the root namespace, the token in the
   * environment. It queues a real migration and follows it to "completed" with exit 0, then lists
   * it and the hosts.
   */
  @Test
  void theCliSubmitsAndWatchesAMigrationToItsEnd() throws Exception {
    String vm = "cli-a";
    vms.add(vm);
    bed.mkvm("host3", vm, "--mem", "128", "--prefill", "16", "--snapshots", "1");
    await().atMost(Duration.ofSeconds(30)).until(() -> hostVms("host3") == 1);

    ProcessRunner.Output submitted =
        ferryCli("submit", vm, "host3", "host1", "--strategy", "overlay", "--watch");
    assertEquals(0, submitted.result().exitCode(), submitted.result().describe());
    String id = submitted.stdout().lines().findFirst().orElseThrow();
    assertTrue(submitted.stdout().contains(vm + "       ["), "a progress bar: " + submitted);
    assertTrue(
        submitted.stdout().contains(id + " completed: verified and running on host1"),
        submitted.stdout());
    checks.runsOnlyOn(vm, "host1", HOSTS);
    assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host1", vm));

    ProcessRunner.Output list = ferryCli("list", "--limit", "500");
    assertTrue(
        list.stdout().lines().anyMatch(l -> l.startsWith(id) && l.contains("completed")),
        list.stdout());
    ProcessRunner.Output hosts = ferryCli("hosts");
    for (String h : HOSTS) {
      assertTrue(hosts.stdout().contains(h), hosts.stdout());
    }
  }

  private static ProcessRunner.Output ferryCli(String... args) {
    List<String> argv = new ArrayList<>(List.of(bed.repo().resolve("scripts/ferry").toString()));
    argv.add("--url=" + control.url());
    argv.addAll(List.of(args));
    return new dev.ferry.node.process.LocalProcessRunner()
        .capture(
            dev.ferry.node.process.ProcessSpec.of(argv)
                .withEnv("FERRY_API_TOKEN", TOKEN)
                .withEnv("FERRY_CA_FILE", control.caFile().toString())
                .withSecret(TOKEN)
                .withTimeout(Duration.ofMinutes(5))
                .withAcceptedExitCodes(0, 1));
  }

  private static int hostVms(String host) throws Exception {
    for (JsonNode h : json.readTree(call("GET", "/api/v1/hosts", null).body()).get("hosts")) {
      if (h.get("host").asText().equals(host)) {
        return h.get("vms").asInt();
      }
    }
    return 0;
  }

  private static void awaitControlRemoved() {
    org.apache.pekko.cluster.typed.Cluster view =
        org.apache.pekko.cluster.typed.Cluster.get(cluster.client().system());
    await()
        .atMost(Duration.ofSeconds(60))
        .pollInterval(Duration.ofMillis(500))
        .until(
            () ->
                java.util.stream.StreamSupport.stream(
                        view.state().getMembers().spliterator(), false)
                    .noneMatch(m -> m.address().getPort().orElse(-1) == ControlNode.PORT));
  }

  private static JsonNode drain(String id) {
    try {
      HttpResponse<String> r = call("GET", "/api/v1/drains/" + id, null);
      return r.statusCode() == 200 ? json.readTree(r.body()) : null;
    } catch (Exception e) {
      return null;
    }
  }

  private static Map<String, String> statuses(String id) {
    Map<String, String> m = new HashMap<>();
    JsonNode d = drain(id);
    if (d != null) {
      d.get("vms").forEach(v -> m.put(v.get("vm").asText(), v.get("status").asText()));
    }
    return m;
  }
}
