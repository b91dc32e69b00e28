package dev.ferry.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.node.metrics.MetricsText;
import dev.ferry.node.scheduler.FakeAgent;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.BulkCopyMethod;
import dev.ferry.protocol.FinalSyncMethod;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.SchedulerProtocol;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The HTTP API over a real scheduler (H2 in memory) and fake agents, on a port chosen by the OS,
 * called with the JDK's HTTP client.
 */
class ApiTest {
  private static final String TOKEN = "test-token-0123456789abcdef";
  private static ActorTestKit kit;
  private static ApiFixture fixture;
  private static String base;
  private static FakeAgent host1;
  private static ActorRef<SchedulerProtocol.Command> scheduler;
  private static FakeAgent host2;
  private static final HttpClient http = HttpClient.newHttpClient();
  private static final ObjectMapper json = new ObjectMapper();

  @BeforeAll
  static void start() throws Exception {
    fixture = ApiFixture.start(TOKEN);
    kit = fixture.kit;
    host1 = fixture.host1;
    host2 = fixture.host2;
    scheduler = fixture.scheduler;
    base = fixture.base;
  }

  @AfterAll
  static void stop() {
    fixture.close();
  }

  static HttpResponse<String> call(String method, String path, String body, String token)
      throws Exception {
    return fixture.call(method, path, body, token);
  }

  static HttpResponse<String> call(String method, String path, String body) throws Exception {
    return call(method, path, body, TOKEN);
  }

  /** The id of an accepted submission; a refusal fails with its body, so the cause is read. */
  private static String acceptedId(HttpResponse<String> r) throws Exception {
    assertEquals(202, r.statusCode(), r.body());
    return json.readTree(r.body()).get("id").asText();
  }

  private static void assertProblem(HttpResponse<String> r, int status, String detailPart)
      throws Exception {
    assertEquals(status, r.statusCode(), r.body());
    assertEquals(
        "application/problem+json",
        r.headers().firstValue("Content-Type").orElse("").split(";")[0],
        r.body());
    JsonNode p = json.readTree(r.body());
    assertEquals(status, p.get("status").asInt());
    assertTrue(p.get("detail").asText().contains(detailPart), r.body());
  }

  /** The scheduler's gauges on the management port: every host, its caps, its links. */
  @Test
  void theSchedulersGaugesDescribeHostsLinksAndTheQueue() throws Exception {
    MetricsText t = new MetricsText();
    SchedulerMetrics.source(kit.system(), scheduler, Duration.ofSeconds(10))
        .appendTo(t)
        .toCompletableFuture()
        .get();
    String text = t.toString();
    assertTrue(text.contains("ferry_scheduler_up 1\n"), text);
    assertTrue(text.contains("# TYPE ferry_queue_depth gauge\n"), text);
    for (String h : List.of("host1", "host2", "host3")) {
      assertTrue(
          text.contains("ferry_host_slots{direction=\"outbound\",host=\"" + h + "\"} 2\n"), text);
      assertTrue(
          text.contains("ferry_host_slots{direction=\"inbound\",host=\"" + h + "\"} 2\n"), text);
    }
    assertTrue(text.contains("ferry_host_state{host=\"host1\","), text);
    assertTrue(text.contains("ferry_link_capacity_bytes{link="), text);

    MetricsText silent = new MetricsText();
    SchedulerMetrics.source(
            kit.system(),
            kit.<SchedulerProtocol.Command>createTestProbe().getRef(),
            Duration.ofMillis(200))
        .appendTo(silent)
        .toCompletableFuture()
        .get();
    assertTrue(silent.toString().contains("ferry_scheduler_up 0\n"), silent.toString());
    assertFalse(silent.toString().contains("ferry_host_slots{"), "no guesses without an answer");
  }

  /** The status page is static and public; the overview stream it reads needs the token. */
  @Test
  void theStatusPageAndItsOverviewStream() throws Exception {
    HttpResponse<String> page = call("GET", "/status", null, null);
    assertEquals(200, page.statusCode());
    assertTrue(page.headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
    assertTrue(page.body().contains("/api/v1/events"), "the page follows the overview stream");

    assertEquals(401, call("GET", "/api/v1/events", null, null).statusCode());
    HttpRequest request =
        HttpRequest.newBuilder(URI.create(base + "/api/v1/events"))
            .header("Authorization", "Bearer " + TOKEN)
            .timeout(Duration.ofSeconds(20))
            .build();
    HttpResponse<java.util.stream.Stream<String>> stream =
        http.send(request, HttpResponse.BodyHandlers.ofLines());
    assertEquals(200, stream.statusCode());
    String data;
    try (java.util.stream.Stream<String> lines = stream.body()) {
      // the first event: "event: overview" then its "data:" line
      java.util.Iterator<String> it = lines.iterator();
      String event = "";
      data = null;
      while (data == null && it.hasNext()) {
        String line = it.next();
        if (line.startsWith("event:")) {
          event = line.substring(6).strip();
        } else if (line.startsWith("data:") && event.equals("overview")) {
          data = line.substring(5).strip();
        }
      }
    }
    JsonNode overview = json.readTree(data);
    assertEquals(3, overview.path("hosts").path("hosts").size(), data);
    assertTrue(overview.path("migrations").isArray(), data);
    assertTrue(overview.path("drains").isArray(), data);
  }

  /** Every option a client may send reaches the engine's MigrationOptions. */
  @Test
  void requestOptionsBecomeMigrationOptions() {
    Requests.Options o =
        new Requests.Options(
            MigrationStrategy.SUSPEND_SYNC,
            FinalSyncMethod.RSYNC,
            BulkCopyMethod.TAR,
            5_000_000L,
            300L,
            2,
            true,
            "2099-01-01T00:00:00Z");
    // this test is about the mapping; the window is the next test's
    MigrationOptions m = Requests.options(o, Duration.ofDays(365L * 100));
    assertEquals(
        new MigrationOptions(
            MigrationStrategy.SUSPEND_SYNC,
            FinalSyncMethod.RSYNC,
            BulkCopyMethod.TAR,
            5_000_000L,
            300L,
            2,
            true,
            java.time.Instant.parse("2099-01-01T00:00:00Z").toEpochMilli()),
        m);
    assertEquals(MigrationOptions.defaults(), Requests.options(null, Duration.ofDays(30)));
  }

  /**
   * A deadline lies between now and ferry.api.max-deadline-ahead (30 days); a huge one is a 422.
   */
  @Test
  void deadlinesOutsideTheWindowAreRefused() throws Exception {
    assertProblem(
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"vm-c\",\"source\":\"host1\",\"options\":{\"deadline\":\"2099-01-01T00:00:00Z\"}}"),
        422,
        "more than 30 days ahead");
    assertProblem(
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"vm-c\",\"source\":\"host1\","
                + "\"options\":{\"deadline\":\"+999999999-12-31T23:59:59Z\"}}"),
        422,
        "more than 30 days ahead");
    assertProblem(
        call("POST", "/api/v1/hosts/host1/drain", "{\"deadline\":\"2001-01-01T00:00:00Z\"}"),
        422,
        "is in the past");
  }

  @Test
  void aRequestWithoutTheTokenIsRefused() throws Exception {
    HttpResponse<String> none = call("GET", "/api/v1/migrations", null, null);
    assertProblem(none, 401, "Bearer");
    assertTrue(none.headers().firstValue("WWW-Authenticate").orElse("").startsWith("Bearer"));
    assertProblem(call("GET", "/api/v1/hosts", null, "wrong-token-0123456789"), 401, "not valid");
    assertEquals(200, call("GET", "/health/live", null, null).statusCode());
  }

  @Test
  void theOpenApiDocumentDescribesEveryRoute() throws Exception {
    HttpResponse<String> r = call("GET", "/api/v1/openapi.json", null, null);
    assertEquals(200, r.statusCode());
    JsonNode paths = json.readTree(r.body()).get("paths");
    for (String p :
        List.of(
            "/api/v1/migrations",
            "/api/v1/migrations/{id}",
            "/api/v1/migrations/{id}/events",
            "/api/v1/hosts",
            "/api/v1/hosts/{host}/drain",
            "/api/v1/vms/{vm}",
            "/api/v1/drains/{id}",
            "/api/v1/rebalance/plan",
            "/api/v1/rebalance/apply",
            "/api/v1/events",
            "/status",
            "/health/ready")) {
      assertTrue(paths.has(p), p);
    }
  }

  /**
   * A hypervisor's driver token: its own host's migrations (submit, watch, cancel) and where a VM
   * runs, nothing else. Another host's migration, drains, hosts, rebalancing and the list of
   * migrations are forbidden.
   */
  @Test
  void aHostTokenMayOnlyMoveItsOwnHostsVms() throws Exception {
    String own = ApiFixture.HOST1_TOKEN;
    String move = "{\"vm\":\"vm-c\",\"source\":\"host1\",\"destination\":\"host3\"}";
    String id = acceptedId(call("POST", "/api/v1/migrations", move, own));
    AgentProtocol.StartMigration start = host1.starts.receiveMessage(Duration.ofSeconds(5));
    assertEquals("vm-c", start.vm());
    assertEquals(200, call("GET", "/api/v1/migrations/" + id, null, own).statusCode());
    assertEquals(200, call("GET", "/api/v1/vms/vm-c", null, own).statusCode());

    String other = "host2-driver-token-0123456789";
    assertProblem(call("GET", "/api/v1/migrations/" + id, null, other), 403, "host2 may only");
    assertProblem(
        call("DELETE", "/api/v1/migrations/" + id + "?reason=x", null, other), 403, "from host1");
    assertProblem(call("POST", "/api/v1/migrations", move, other), 403, "a migration from host1");
    for (String[] forbidden :
        new String[][] {
          {"GET", "/api/v1/migrations"},
          {"GET", "/api/v1/hosts"},
          {"POST", "/api/v1/hosts/host1/drain"},
          {"GET", "/api/v1/drains"},
          {"POST", "/api/v1/rebalance/plan"},
          {"GET", "/api/v1/events"}
        }) {
      assertProblem(
          call(forbidden[0], forbidden[1], forbidden[0].equals("POST") ? "{}" : null, own),
          403,
          "host1 may only");
    }
    assertEquals(401, call("GET", "/api/v1/hosts", null, own + "x").statusCode());
    // its own host's migration it may cancel; the agent is asked
    java.util.concurrent.CompletableFuture<HttpResponse<String>> cancel =
        java.util.concurrent.CompletableFuture.supplyAsync(
            () -> {
              try {
                return call("DELETE", "/api/v1/migrations/" + id + "?reason=one", null, own);
              } catch (Exception e) {
                throw new IllegalStateException(e);
              }
            });
    AgentProtocol.CancelMigration c = host1.cancels.receiveMessage(Duration.ofSeconds(5));
    c.replyTo().tell(new AgentProtocol.CancelReply(id, true, "rolling back"));
    assertEquals(202, cancel.get().statusCode());
    host1.finish(start, MigrationOutcome.CANCELLED);
  }

  /** The OpenNebula driver asks where a VM runs when a migration's result cannot say. */
  @Test
  void whereAVmRunsByName() throws Exception {
    JsonNode here = json.readTree(call("GET", "/api/v1/vms/vm-c", null).body());
    assertEquals("vm-c", here.get("vm").asText());
    assertEquals(1, here.get("on").size(), here.toString());
    assertEquals("host1", here.get("on").get(0).get("host").asText());
    assertTrue(here.get("on").get(0).get("running").asBoolean());
    HttpResponse<String> nowhere = call("GET", "/api/v1/vms/vm-zz", null);
    assertEquals(200, nowhere.statusCode());
    assertEquals(0, json.readTree(nowhere.body()).get("on").size());
    assertProblem(call("GET", "/api/v1/vms/a;b", null), 422, "");
  }

  @Test
  void badInputIsRejectedBeforeTheScheduler() throws Exception {
    assertProblem(call("POST", "/api/v1/migrations", "{not json"), 400, "");
    assertProblem(
        call("POST", "/api/v1/migrations", "{\"vm\":\"vm-a\",\"source\":\"host1\",\"x\":1}"),
        400,
        "x");
    assertProblem(
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"vm-a; rm -rf /\",\"source\":\"host1\",\"destination\":\"host2\"}"),
        422,
        "vm");
    assertProblem(
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"../../etc/passwd\",\"source\":\"host1\",\"destination\":\"host2\"}"),
        422,
        "vm");
    assertProblem(
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"vm-a\",\"source\":\"host1\",\"destination\":\"host1\"}"),
        422,
        "same host");
    assertProblem(
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"vm-a\",\"source\":\"host1\",\"destination\":\"host9\"}"),
        422,
        "unknown destination host host9");
    assertProblem(
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"vm-a\",\"source\":\"host1\",\"destination\":\"host2\","
                + "\"options\":{\"strategy\":\"teleport\"}}"),
        400,
        "teleport");
    assertProblem(call("GET", "/api/v1/migrations/m-nope", null), 404, "m-nope");
    assertProblem(call("GET", "/api/v1/migrations/..%2F..", null), 422, "id");
    assertProblem(call("GET", "/api/v1/nothing-here", null), 404, "");
    host1.starts.expectNoMessage(Duration.ofMillis(200));
  }

  @Test
  void aMigrationIsQueuedStreamedAndFinished() throws Exception {
    HttpResponse<String> r =
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"vm-a\",\"source\":\"host1\",\"destination\":\"host2\","
                + "\"options\":{\"strategy\":\"overlay\",\"bandwidth\":1000000}}");
    assertEquals(202, r.statusCode(), r.body());
    String id = json.readTree(r.body()).get("id").asText();
    AgentProtocol.StartMigration start = host1.starts.receiveMessage(Duration.ofSeconds(5));
    assertEquals(id, start.migrationId());
    assertEquals(1_000_000L, start.options().bandwidthBytesPerSecond());
    assertEquals(
        "overlay",
        json.readTree(call("GET", "/api/v1/migrations/" + id, null).body())
            .get("request")
            .get("options")
            .get("strategy")
            .asText());

    HttpRequest sse =
        HttpRequest.newBuilder(URI.create(base + "/api/v1/migrations/" + id + "/events"))
            .header("Authorization", "Bearer " + TOKEN)
            .build();
    HttpResponse<java.io.InputStream> stream =
        http.send(sse, HttpResponse.BodyHandlers.ofInputStream());
    assertEquals(200, stream.statusCode());
    assertTrue(
        stream.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
    List<String> events = new ArrayList<>();
    try (BufferedReader in =
        new BufferedReader(new InputStreamReader(stream.body(), StandardCharsets.UTF_8))) {
      // an event is a block of lines ("data:", "event:", in any order) ended by a blank line
      String line;
      String event = null;
      String data = null;
      boolean finished = false;
      while ((line = in.readLine()) != null) {
        if (line.startsWith("event:")) {
          event = line.substring(6).strip();
        } else if (line.startsWith("data:")) {
          data = line.substring(5);
        } else if (line.isEmpty() && event != null) {
          events.add(event);
          if (event.equals("end")) {
            assertEquals("completed", json.readTree(data).get("state").asText());
          }
          if (!finished) {
            host1.finish(start, MigrationOutcome.COMPLETED);
            finished = true;
          }
          event = null;
        }
      }
    }
    assertEquals("progress", events.get(0));
    assertEquals("end", events.get(events.size() - 1), events.toString());
    assertProblem(call("DELETE", "/api/v1/migrations/" + id, null), 409, "already ended");
  }

  /**
   * What the HTTP layer refuses before any actor sees the request (issue 16): a body that is not
   * declared JSON, a boolean query parameter that is neither true nor false, and an Idempotency-Key
   * reused for another body.
   */
  @Test
  void nonJsonBodiesBadQueryValuesAndReusedKeysAreRefused() throws Exception {
    HttpResponse<String> text =
        http.send(
            HttpRequest.newBuilder(URI.create(base + "/api/v1/migrations"))
                .header("Authorization", "Bearer " + TOKEN)
                .header("Content-Type", "text/plain")
                .POST(HttpRequest.BodyPublishers.ofString("{\"vm\":\"vm-x\",\"source\":\"host1\"}"))
                .build(),
            HttpResponse.BodyHandlers.ofString());
    assertProblem(text, 415, "text/plain");
    assertProblem(
        call("GET", "/api/v1/migrations?active=maybe", null), 422, "must be true or false");
    String body = "{\"vm\":\"vm-d\",\"source\":\"host1\",\"destination\":\"host3\"}";
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(base + "/api/v1/migrations"))
            .header("Authorization", "Bearer " + TOKEN)
            .header("Idempotency-Key", "one-43-migrate-1")
            .header("Content-Type", "application/json");
    HttpResponse<String> first =
        http.send(
            b.POST(HttpRequest.BodyPublishers.ofString(body)).build(),
            HttpResponse.BodyHandlers.ofString());
    assertEquals(202, first.statusCode(), first.body());
    String other =
        "{\"vm\":\"vm-d\",\"source\":\"host1\",\"destination\":\"host3\","
            + "\"options\":{\"strategy\":\"cold\"}}";
    assertProblem(
        http.send(
            b.POST(HttpRequest.BodyPublishers.ofString(other)).build(),
            HttpResponse.BodyHandlers.ofString()),
        409,
        "was used for another request");
    // the accepted one started on host1: take its start off the shared probe
    assertEquals("vm-d", host1.starts.receiveMessage(Duration.ofSeconds(5)).vm());
  }

  @Test
  void theSameIdempotencyKeyGivesTheSameMigration() throws Exception {
    String body = "{\"vm\":\"vm-b\",\"source\":\"host1\",\"destination\":\"host3\"}";
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(base + "/api/v1/migrations"))
            .header("Authorization", "Bearer " + TOKEN)
            .header("Idempotency-Key", "one-42-migrate-7")
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body));
    String first = acceptedId(http.send(b.build(), HttpResponse.BodyHandlers.ofString()));
    String second = acceptedId(http.send(b.build(), HttpResponse.BodyHandlers.ofString()));
    assertEquals(first, second);
    AgentProtocol.StartMigration start = host1.starts.receiveMessage(Duration.ofSeconds(5));
    assertEquals(first, start.migrationId());
    java.util.concurrent.CompletableFuture<HttpResponse<String>> cancel =
        java.util.concurrent.CompletableFuture.supplyAsync(
            () -> {
              try {
                return call("DELETE", "/api/v1/migrations/" + first + "?reason=test", null);
              } catch (Exception e) {
                throw new IllegalStateException(e);
              }
            });
    AgentProtocol.CancelMigration c = host1.cancels.receiveMessage(Duration.ofSeconds(5));
    assertEquals("test", c.reason());
    // the agent refuses (past the switchover): the caller learns it
    c.replyTo().tell(new AgentProtocol.CancelReply(first, false, "past the switchover"));
    assertProblem(cancel.get(), 409, "past the switchover");
    host1.finish(start, MigrationOutcome.COMPLETED);
  }

  @Test
  void hostsDrainsAndRebalancePlans() throws Exception {
    HttpResponse<String> hosts = call("GET", "/api/v1/hosts", null);
    assertEquals(200, hosts.statusCode());
    assertEquals(3, json.readTree(hosts.body()).get("hosts").size(), hosts.body());

    HttpResponse<String> plan =
        call("POST", "/api/v1/rebalance/plan", "{\"policy\":\"balance\",\"threshold\":0.0}");
    assertEquals(200, plan.statusCode(), plan.body());
    assertFalse(json.readTree(plan.body()).get("applied").asBoolean());
    assertProblem(
        call("POST", "/api/v1/rebalance/plan", "{\"policy\":\"balance\",\"threshold\":7}"),
        422,
        "threshold");

    assertProblem(call("POST", "/api/v1/hosts/host9/drain", "{}"), 422, "unknown host host9");
    assertProblem(
        call("POST", "/api/v1/hosts/host2/drain", "{\"deadline\":\"2001-01-01T00:00:00Z\"}"),
        422,
        "past");
    HttpResponse<String> drain = call("POST", "/api/v1/hosts/host2/drain", "");
    assertEquals(202, drain.statusCode(), drain.body());
    JsonNode d = json.readTree(drain.body());
    assertEquals("completed", d.get("state").asText(), "host2 runs no VM: nothing to move");
    HttpResponse<String> enable = call("POST", "/api/v1/hosts/host2/enable", null);
    assertEquals(200, enable.statusCode(), enable.body());
    assertProblem(call("DELETE", "/api/v1/drains/" + d.get("id").asText(), null), 409, "ended");
    assertEquals(200, call("GET", "/api/v1/drains", null).statusCode());
  }

  /**
   * Values of the wrong JSON type are refused, never coerced: a strategy given as a number once
   * started a cold migration (the guest powered off), {@code coldFallback: ""} a real drain, and
   * 1.5 was truncated. None of these requests may start anything.
   */
  @Test
  void valuesOfTheWrongTypeAreRefusedAndStartNothing() throws Exception {
    String move = "{\"vm\":\"vm-a\",\"source\":\"host1\",\"destination\":\"host2\",\"options\":";
    List<String> migrations =
        List.of(
            move + "{\"strategy\":2}}",
            move + "{\"strategy\":\"2\"}}",
            move + "{\"bandwidth\":1.5}}",
            move + "{\"bandwidth\":\"1000\"}}",
            move + "{\"warmPasses\":\"\"}}",
            move + "{\"autoConverge\":1}}",
            move + "{\"autoConverge\":\"true\"}}",
            "{\"vm\":\"vm-a\",\"vm\":\"vm-b\",\"source\":\"host1\",\"destination\":\"host2\"}",
            "{\"vm\":7,\"source\":\"host1\",\"destination\":\"host2\"}");
    for (String body : migrations) {
      assertEquals(400, call("POST", "/api/v1/migrations", body).statusCode(), body);
    }
    for (String body :
        List.of(
            "{\"coldFallback\":\"\"}",
            "{\"coldFallback\":0}",
            "{\"coldFallback\":1}",
            "{\"coldFallback\":\"true\"}")) {
      assertEquals(400, call("POST", "/api/v1/hosts/host1/drain", body).statusCode(), body);
    }
    for (String body :
        List.of("{\"policy\":0,\"threshold\":0.2}", "{\"policy\":\"balance\",\"maxMoves\":2.5}")) {
      assertEquals(400, call("POST", "/api/v1/rebalance/plan", body).statusCode(), body);
    }
    // Jackson reads "NaN" as a number whatever the coercion rules; the range check refuses it
    assertProblem(
        call("POST", "/api/v1/rebalance/plan", "{\"policy\":\"balance\",\"threshold\":\"NaN\"}"),
        422,
        "threshold must be between 0 and 1");
    host1.starts.expectNoMessage(Duration.ofMillis(300));
    // and the same fields of the right type are still accepted
    assertEquals(
        202,
        call("POST", "/api/v1/migrations", move + "{\"strategy\":\"overlay\",\"bandwidth\":1000}}")
            .statusCode());
    AgentProtocol.StartMigration start = host1.starts.receiveMessage(Duration.ofSeconds(5));
    assertEquals(MigrationStrategy.OVERLAY, start.options().strategy());
    host1.finish(start, MigrationOutcome.COMPLETED);
  }

  /** A request straight on the socket, for what the HTTP client would refuse to send. */
  private static String raw(String request) throws Exception {
    URI u = URI.create(base);
    try (java.net.Socket socket = new java.net.Socket(u.getHost(), u.getPort())) {
      socket.setSoTimeout(10_000);
      socket.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
      socket.getOutputStream().flush();
      return new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  /**
   * What the HTTP layer refuses before any route (a request line, version, method, URI or header it
   * will not take) is a problem document like every other refusal, and paths are matched as sent: a
   * dot segment is refused, not resolved into another route.
   */
  @Test
  void theHttpLayersRefusalsAndDotSegmentsAreProblems() throws Exception {
    String auth = "Authorization: Bearer " + TOKEN + "\r\n";
    String[][] cases = {
      {"GET /api/v1/hosts HTTP/1.7\r\nHost: x\r\nConnection: close\r\n\r\n", "505"},
      {"BREW /api/v1/hosts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "501"},
      {
        "GET /api/v1/" + "a".repeat(5000) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "414"
      },
      {
        "GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
            + "b".repeat(20_000)
            + "\r\n\r\n",
        "431"
      },
      {
        "GET /api/v1/migrations/../events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + auth
            + "\r\n",
        "400"
      },
      {
        "GET /api/v1/migrations/%2e%2E/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + auth
            + "\r\n",
        "400"
      },
      {"GET /api/v1/./hosts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + "\r\n", "400"},
    };
    for (String[] c : cases) {
      String what = c[0].length() > 60 ? c[0].substring(0, 60) : c[0];
      String response = raw(c[0]);
      assertTrue(response.startsWith("HTTP/1.1 " + c[1]), what + " -> " + response);
      assertTrue(
          response.toLowerCase().contains("content-type: application/problem+json"),
          what + " -> " + response);
      JsonNode problem = json.readTree(response.substring(response.indexOf("\r\n\r\n") + 4));
      assertEquals(Integer.parseInt(c[1]), problem.get("status").asInt(), response);
      assertFalse(problem.get("detail").asText().contains("Exception"), response);
    }
    assertProblem(call("GET", "/api/v1/migrations/../events", null), 400, "matched as sent");
    // the same route without the dot segment is served
    assertEquals(200, call("GET", "/api/v1/hosts", null).statusCode());
  }

  /** A refusal echoes at most a few dozen characters of a value and never a Java type. */
  @Test
  void refusalsEchoLittleOfTheInputAndNoJavaTypes() throws Exception {
    String huge = "z".repeat(1 << 20);
    for (String body :
        List.of(
            "{\"vm\":\"vm-a\",\"source\":\"host1\",\"options\":{\"strategy\":\"" + huge + "\"}}",
            "{\"vm\":\"" + huge + "\",\"source\":\"host1\",\"destination\":\"host2\"}",
            "{\"vm\":\"vm-a\",\"source\":\"host1\",\"options\":{\"bandwidth\":1.5}}",
            "{\"vm\":\"vm-a\",\"source\":\"host1\",\"options\":{\"warmPasses\":1099511627776}}",
            "{\"vm\":\"vm-a\",\"" + huge + "\":1}")) {
      HttpResponse<String> r = call("POST", "/api/v1/migrations", body);
      assertTrue(r.statusCode() == 400 || r.statusCode() == 422, r.body());
      assertTrue(r.body().length() < 600, "a short answer: " + r.body().length() + " characters");
      String detail = json.readTree(r.body()).get("detail").asText();
      assertFalse(detail.matches("(?s).*(java\\.|Exception|`[\\w.$]+`).*"), detail);
    }
    assertProblem(
        call(
            "POST",
            "/api/v1/migrations",
            "{\"vm\":\"vm-a\",\"source\":\"host1\",\"options\":{\"bandwidth\":1.5}}"),
        400,
        "field options.bandwidth must be an integer");
    HttpResponse<String> tooBig =
        call("POST", "/api/v1/migrations", "{\"vm\":\"" + "y".repeat(10 << 20) + "\"}");
    assertProblem(tooBig, 413, "larger than this server accepts");
    host1.starts.expectNoMessage(Duration.ofMillis(200));
  }
}
