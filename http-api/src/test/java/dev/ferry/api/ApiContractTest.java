package dev.ferry.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.node.validation.Names;
import java.io.InputStream;
import java.lang.reflect.RecordComponent;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The OpenAPI document and the server agree: every field the server reads is documented and every
 * documented field is read; the enums list exactly the names the server accepts; and each stated
 * constraint (type, enum, minimum, maximum, pattern, maxLength, unknown fields) is enforced at its
 * boundary, on the real routes, checked one field at a time against a valid request. The requests
 * are only planned ({@code /rebalance/plan}) or refused, so nothing starts.
 */
class ApiContractTest {
  private static final String TOKEN = "contract-token-0123456789abcdef";
  private static final ObjectMapper JSON = new ObjectMapper();
  private static ApiFixture fixture;
  private static JsonNode openApi;

  @BeforeAll
  static void start() throws Exception {
    fixture = ApiFixture.start(TOKEN);
    try (InputStream in = FerryRoutes.class.getResourceAsStream("openapi.json")) {
      openApi = JSON.readTree(in);
    }
  }

  @AfterAll
  static void stop() {
    fixture.close();
  }

  private static JsonNode schema(String name) {
    return openApi.path("components").path("schemas").path(name);
  }

  private static Set<String> documented(String schema) {
    Set<String> names = new TreeSet<>();
    schema(schema).path("properties").fieldNames().forEachRemaining(names::add);
    return names;
  }

  private static Set<String> read(Class<? extends Record> type) {
    Set<String> names = new TreeSet<>();
    for (RecordComponent c : type.getRecordComponents()) {
      names.add(c.getName());
    }
    return names;
  }

  @Test
  void everyFieldTheServerReadsIsDocumentedAndNoOther() {
    assertEquals(read(Requests.Submit.class), documented("SubmitMigration"));
    assertEquals(read(Requests.Options.class), documented("Options"));
    assertEquals(read(Requests.Drain.class), documented("DrainRequest"));
    assertEquals(read(Requests.Rebalance.class), documented("RebalanceRequest"));
    for (String s : List.of("SubmitMigration", "Options", "DrainRequest", "RebalanceRequest")) {
      assertFalse(
          schema(s).path("additionalProperties").asBoolean(true),
          s + " must say that unknown fields are refused");
    }
  }

  @Test
  void everyDocumentedEnumIsExactlyWhatTheServerAccepts() {
    for (Map.Entry<String, Class<?>> e :
        Map.<String, Class<?>>of(
                "Options.strategy", dev.ferry.protocol.MigrationStrategy.class,
                "Options.finalSync", dev.ferry.protocol.FinalSyncMethod.class,
                "Options.bulkCopy", dev.ferry.protocol.BulkCopyMethod.class,
                "RebalanceRequest.policy", dev.ferry.protocol.SchedulerProtocol.Policy.class)
            .entrySet()) {
      String[] at = e.getKey().split("\\.");
      List<String> doc = new ArrayList<>();
      schema(at[0]).path("properties").path(at[1]).path("enum").forEach(n -> doc.add(n.asText()));
      assertEquals(JsonErrors.enumNames(e.getValue()), doc, e.getKey());
    }
  }

  @Test
  void theNamePatternsAreTheServersPatterns() {
    JsonNode submit = schema("SubmitMigration").path("properties");
    assertEquals("^" + Names.VM_NAME.pattern() + "$", submit.path("vm").path("pattern").asText());
    assertEquals(
        "^" + Names.ID.pattern() + "$", submit.path("idempotencyKey").path("pattern").asText());
    // the host pattern is the server's without its length look-ahead, stated as maxLength
    assertEquals(
        Names.HOST_NAME.pattern().replace("(?=.{1,253}$)", ""),
        submit.path("source").path("pattern").asText().replaceAll("^\\^|\\$$", ""));
    assertEquals(253, submit.path("source").path("maxLength").asInt());
  }

  /**
   * Each numeric, enum and boolean field of the rebalance request and its options, at and beyond
   * each documented bound, and with a value of another JSON type: accepted exactly within.
   */
  @Test
  void eachDocumentedBoundIsEnforcedAtTheBoundary() throws Exception {
    int checked = 0;
    for (String schema : List.of("RebalanceRequest", "Options")) {
      for (Map.Entry<String, JsonNode> f : schema(schema).path("properties").properties()) {
        String field = f.getKey();
        JsonNode spec = f.getValue();
        if (field.equals("options") || field.equals("deadline")) {
          continue; // the nested object is checked as Options; deadlines have their own test
        }
        for (Probe p : probes(spec)) {
          ObjectNode body = JSON.createObjectNode().put("policy", "balance");
          ObjectNode target = schema.equals("Options") ? body.putObject("options") : body;
          target.set(field, p.value());
          HttpResponse<String> r = plan(body.toString());
          String what = schema + "." + field + " = " + p.value() + " (" + p.why() + ")";
          if (p.valid()) {
            assertEquals(200, r.statusCode(), what + ": " + r.body());
          } else {
            assertTrue(r.statusCode() == 400 || r.statusCode() == 422, what + ": " + r.body());
            assertProblemIsShortAndOurs(r, what);
          }
          checked++;
        }
      }
    }
    assertTrue(checked >= 30, "checked " + checked + " values");
    fixture.host1.starts.expectNoMessage(Duration.ofMillis(100));
  }

  @Test
  void deadlinesOnlyWithinTheDocumentedWindow() throws Exception {
    Instant now = Instant.now();
    String[][] cases = {
      {now.plus(Duration.ofDays(1)).toString(), "200"},
      {now.plus(Duration.ofDays(29)).toString(), "200"},
      {now.plus(Duration.ofDays(31)).toString(), "422"},
      {now.minus(Duration.ofMinutes(1)).toString(), "422"},
      {"+1000000000-12-31T23:59:59.999999999Z", "422"},
      {"9999-12-31T23:59:59Z", "422"},
      {"tomorrow", "422"},
    };
    for (String[] c : cases) {
      HttpResponse<String> r =
          plan("{\"policy\":\"balance\",\"options\":{\"deadline\":\"" + c[0] + "\"}}");
      assertEquals(Integer.parseInt(c[1]), r.statusCode(), c[0] + ": " + r.body());
    }
  }

  @Test
  void queryAndPathParametersAreCheckedAsDocumented() throws Exception {
    JsonNode list = openApi.path("paths").path("/api/v1/migrations").path("get");
    JsonNode limit = null;
    for (JsonNode p : list.path("parameters")) {
      if (p.path("name").asText().equals("limit")) {
        limit = p.path("schema");
      }
    }
    assertTrue(limit != null, "limit is documented");
    int min = limit.path("minimum").asInt();
    int max = limit.path("maximum").asInt();
    assertEquals(200, get("/api/v1/migrations?limit=" + min).statusCode());
    assertEquals(200, get("/api/v1/migrations?limit=" + max).statusCode());
    assertEquals(422, get("/api/v1/migrations?limit=" + (min - 1)).statusCode());
    assertEquals(422, get("/api/v1/migrations?limit=" + (max + 1)).statusCode());
    assertEquals(422, get("/api/v1/migrations?limit=1.5").statusCode());
    assertEquals(200, get("/api/v1/migrations?active=true").statusCode());
    assertEquals(422, get("/api/v1/migrations?active=1").statusCode());
    assertEquals(422, get("/api/v1/migrations/bad%20id").statusCode());
    assertEquals(422, get("/api/v1/vms/vm%3Bls").statusCode());
    assertEquals(404, get("/api/v1/migrations/m-0123456789abcdef").statusCode());
    HttpResponse<String> longReason =
        send("DELETE", "/api/v1/migrations/m-0123456789abcdef?reason=" + "x".repeat(201), null);
    assertEquals(422, longReason.statusCode(), longReason.body());
    HttpResponse<String> controlReason =
        send("DELETE", "/api/v1/migrations/m-0123456789abcdef?reason=a%0Ab", null);
    assertEquals(422, controlReason.statusCode(), controlReason.body());
  }

  record Probe(JsonNode value, boolean valid, String why) {}

  /** Values at and beyond each constraint a property states, plus one of another JSON type. */
  static List<Probe> probes(JsonNode spec) {
    List<Probe> p = new ArrayList<>();
    String type = spec.path("type").asText();
    var f = JSON.getNodeFactory();
    switch (type) {
      case "integer", "number" -> {
        boolean integer = type.equals("integer");
        if (spec.has("minimum")) {
          long min = spec.path("minimum").asLong();
          p.add(new Probe(f.numberNode(min), true, "minimum"));
          if (min > Long.MIN_VALUE) {
            p.add(new Probe(f.numberNode(integer ? min - 1 : min - 0.001), false, "below"));
          }
        }
        if (spec.has("maximum")) {
          double max = spec.path("maximum").asDouble();
          if (integer && max < 9.0e18) {
            p.add(new Probe(f.numberNode((long) max), true, "maximum"));
            p.add(new Probe(f.numberNode((long) max + 1), false, "above"));
          } else if (!integer) {
            p.add(new Probe(f.numberNode(max), true, "maximum"));
            p.add(new Probe(f.numberNode(max + 0.001), false, "above"));
          }
        }
        if (integer) {
          p.add(new Probe(f.numberNode(1.5), false, "not an integer"));
        }
        p.add(new Probe(f.textNode("1"), false, "a string"));
        p.add(new Probe(f.booleanNode(true), false, "a boolean"));
      }
      case "string" -> {
        if (spec.has("enum")) {
          spec.path("enum").forEach(v -> p.add(new Probe(v, true, "documented")));
          p.add(
              new Probe(f.textNode("not-a-" + spec.path("enum").get(0).asText()), false, "other"));
          p.add(new Probe(f.numberNode(0), false, "an enum as a number"));
          p.add(new Probe(f.textNode(""), false, "empty"));
        }
        p.add(new Probe(f.numberNode(1), false, "a number"));
      }
      case "boolean" -> {
        p.add(new Probe(f.booleanNode(true), true, "true"));
        p.add(new Probe(f.booleanNode(false), true, "false"));
        p.add(new Probe(f.textNode("true"), false, "a string"));
        p.add(new Probe(f.numberNode(1), false, "a number"));
      }
      default -> throw new AssertionError("no probes for type " + type + " in " + spec);
    }
    return p;
  }

  static void assertProblemIsShortAndOurs(HttpResponse<String> r, String what) throws Exception {
    assertEquals(
        "application/problem+json",
        r.headers().firstValue("Content-Type").orElse("").split(";")[0],
        what);
    String detail = JSON.readTree(r.body()).path("detail").asText();
    assertTrue(detail.length() <= 240, what + ": too long: " + detail);
    assertFalse(
        detail.matches("(?s).*(java\\.|Exception|\\bscala\\.|`[\\w.$]+`).*"),
        what + ": names a Java type: " + detail);
  }

  private static HttpResponse<String> plan(String body) throws Exception {
    return send("POST", "/api/v1/rebalance/plan", body);
  }

  private static HttpResponse<String> get(String path) throws Exception {
    return send("GET", path, null);
  }

  static HttpResponse<String> send(String method, String path, String body) throws Exception {
    return fixture.call(method, path, body, TOKEN);
  }
}
