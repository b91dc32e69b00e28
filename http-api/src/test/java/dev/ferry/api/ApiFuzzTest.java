package dev.ferry.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Seeded, bounded fuzzing of the real routes (a real scheduler over fake agents): every request is
 * invalid by construction (a value of another JSON type, an enum by number or an unknown name, a
 * number out of range, an unknown or duplicate field, truncated JSON, a name with a forbidden
 * character or too long, a deadline outside the window, a body that is not JSON by its
 * Content-Type, a dot segment in the path, a bad query value, a bad Idempotency-Key, a wrong
 * token). None may be answered 2xx or 5xx, every refusal is a short problem document that names no
 * Java type, and afterwards no migration, drain or agent start exists.
 *
 * <p>{@code -Dferry.fuzz.seed=N} replays a run; {@code -Dferry.fuzz.requests=N} sets its size. A
 * failure names the seed and the request.
 */
class ApiFuzzTest {
  private static final String TOKEN = "fuzz-token-0123456789abcdef";
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final HttpClient HTTP = HttpClient.newHttpClient();
  private static final long SEED = Long.getLong("ferry.fuzz.seed", 20261202L);
  private static final int REQUESTS = Integer.getInteger("ferry.fuzz.requests", 3000);
  private static ApiFixture fixture;

  @BeforeAll
  static void start() throws Exception {
    fixture = ApiFixture.start(TOKEN);
  }

  @AfterAll
  static void stop() {
    fixture.close();
  }

  /** One request to send; {@code why} says what makes it invalid. */
  record Request(
      String method,
      String path,
      String contentType,
      String body,
      String token,
      String idempotencyKey,
      String why) {
    String describe() {
      String b = body == null ? "" : body.length() > 200 ? body.substring(0, 200) + "..." : body;
      return method + " " + path + " [" + why + "] " + b;
    }
  }

  @Test
  void invalidRequestsAreRefusedWithProblemsAndStartNothing() throws Exception {
    Random random = new Random(SEED);
    Map<String, Integer> byStatus = new TreeMap<>();
    for (int i = 0; i < REQUESTS; i++) {
      Request r = generate(random);
      String where = "seed " + SEED + ", request #" + i + ": " + r.describe();
      HttpResponse<String> resp;
      try {
        resp = send(r);
      } catch (java.io.IOException e) {
        fail(where + ": the connection failed: " + e);
        return;
      }
      int status = resp.statusCode();
      byStatus.merge(String.valueOf(status), 1, Integer::sum);
      assertTrue(status >= 400 && status < 500, where + " -> " + status + " " + resp.body());
      assertEquals(
          "application/problem+json",
          resp.headers().firstValue("Content-Type").orElse("").split(";")[0],
          where + " -> " + resp.body());
      assertTrue(resp.body().length() < 2048, where + ": a long answer: " + resp.body());
      JsonNode problem = JSON.readTree(resp.body());
      assertEquals(status, problem.path("status").asInt(), where);
      String detail = problem.path("detail").asText();
      assertTrue(detail.length() <= 240, where + ": a long detail: " + detail);
      assertFalse(
          detail.matches("(?s).*(java\\.|Exception|\\bscala\\.|`[\\w.$]+`).*"),
          where + ": names a Java type: " + detail);
    }
    // nothing started: no agent was asked, no job or drain exists, every host still active
    fixture.host1.starts.expectNoMessage(Duration.ofMillis(300));
    fixture.host2.starts.expectNoMessage(Duration.ofMillis(10));
    JsonNode jobs = read("/api/v1/migrations");
    assertEquals(0, jobs.path("jobs").size(), "seed " + SEED + ": jobs exist: " + jobs);
    JsonNode drains = read("/api/v1/drains");
    assertEquals(0, drains.path("drains").size(), "seed " + SEED + ": drains exist: " + drains);
    JsonNode hosts = read("/api/v1/hosts");
    hosts
        .path("hosts")
        .forEach(h -> assertEquals("active", h.path("state").asText(), h.toString()));
    System.out.println("ApiFuzzTest: seed " + SEED + ", " + REQUESTS + " requests: " + byStatus);
    assertTrue(byStatus.size() >= 5, "the requests reach several refusals: " + byStatus);
  }

  // ---------------------------------------------------------------- generation

  private static final List<String> BODY_PATHS =
      List.of(
          "/api/v1/migrations",
          "/api/v1/hosts/host1/drain",
          "/api/v1/rebalance/plan",
          "/api/v1/rebalance/apply");

  /** A valid body for each path, as a field map kept in order. */
  private static Map<String, Object> validBody(String path) {
    Map<String, Object> b = new java.util.LinkedHashMap<>();
    switch (path) {
      case "/api/v1/migrations" -> {
        b.put("vm", "vm-a");
        b.put("source", "host1");
        b.put("destination", "host2");
        b.put("options", new java.util.LinkedHashMap<>(Map.of("strategy", "overlay")));
      }
      case "/api/v1/hosts/host1/drain" -> {
        b.put("coldFallback", false);
        b.put("options", new java.util.LinkedHashMap<>(Map.of("warmPasses", 1)));
      }
      default -> {
        b.put("policy", "balance");
        b.put("threshold", 0.0);
        b.put("maxMoves", 2);
      }
    }
    return b;
  }

  /** Values of the wrong type or out of range for each known field. */
  private static final Map<String, List<Object>> WRONG =
      Map.ofEntries(
          Map.entry("vm", List.of(7, true, List.of("vm-a"), Map.of())),
          Map.entry("source", List.of(1, false, List.of())),
          Map.entry("destination", List.of(2, true, Map.of("h", 1))),
          Map.entry("strategy", List.of(0, 1, 2, "2", "teleport", "", "COLD ", true)),
          Map.entry("finalSync", List.of(0, "rsync2", "", false)),
          Map.entry("bulkCopy", List.of(1, "cp", "")),
          Map.entry("bandwidth", List.of(-1, 1.5, "1000", "", true, 1e30)),
          Map.entry("maxDowntimeMillis", List.of(-1, 60_001, 2.5, "10", Long.MAX_VALUE)),
          Map.entry("warmPasses", List.of(-1, 11, "", "1", 1.5, 1L << 40)),
          Map.entry("autoConverge", List.of(1, 0, "true", "", "yes")),
          Map.entry("coldFallback", List.of(1, 0, "", "true", "1", 1.5)),
          Map.entry("policy", List.of(0, 1, "", "spread", true)),
          Map.entry("threshold", List.of(-0.1, 1.1, "NaN", "0.2", true, 1e300)),
          Map.entry("maxMoves", List.of(0, 1001, 2.5, "3", -5)),
          Map.entry(
              "deadline",
              List.of(
                  "+1000000000-12-31T23:59:59.999999999Z",
                  "9999-12-31T23:59:59Z",
                  "1970-01-01T00:00:00Z",
                  "tomorrow",
                  "",
                  17,
                  "2026-13-01T00:00:00Z")));

  private static final String[] BAD_NAME_PARTS = {
    ";", " ", "/", "$(id)", "`", "\n", "\u0000", "..", "\u00e9", "|", "&", "'", "\"", "\\"
  };

  private static Request generate(Random r) throws Exception {
    int kind = r.nextInt(100);
    if (kind < 55) {
      return mutatedBody(r);
    }
    if (kind < 63) {
      return wrongContentType(r);
    }
    if (kind < 75) {
      return badPath(r);
    }
    if (kind < 85) {
      return badQuery(r);
    }
    if (kind < 92) {
      return badIdempotencyKey(r);
    }
    return badToken(r);
  }

  private static Request json(String path, String body, String why) {
    return new Request("POST", path, "application/json", body, TOKEN, null, why);
  }

  @SuppressWarnings("unchecked")
  private static Request mutatedBody(Random r) throws Exception {
    String path = BODY_PATHS.get(r.nextInt(BODY_PATHS.size()));
    Map<String, Object> body = validBody(path);
    Map<String, Object> options =
        (Map<String, Object>)
            body.computeIfAbsent("options", k -> new java.util.LinkedHashMap<String, Object>());
    int m = r.nextInt(9);
    switch (m) {
      case 0, 1 -> {
        // a wrong value for a field this path reads, at the top or in the options
        List<String> top = new java.util.ArrayList<>(body.keySet());
        top.remove("options");
        if (path.endsWith("/drain")) {
          top.add("deadline");
        }
        List<String> inOptions =
            List.of(
                "strategy",
                "finalSync",
                "bulkCopy",
                "bandwidth",
                "maxDowntimeMillis",
                "warmPasses",
                "autoConverge",
                "deadline");
        boolean atTop = r.nextInt(3) == 0;
        String f =
            atTop ? top.get(r.nextInt(top.size())) : inOptions.get(r.nextInt(inOptions.size()));
        List<Object> wrong = WRONG.get(f);
        Object v = wrong.get(r.nextInt(wrong.size()));
        (atTop ? body : options).put(f, v);
        return json(path, JSON.writeValueAsString(body), (atTop ? "" : "options.") + f + " = " + v);
      }
      case 2 -> {
        String unknown = r.nextBoolean() ? "x" + r.nextInt(1000) : "strategy ";
        (r.nextBoolean() ? body : options).put(unknown, r.nextInt(3));
        return json(path, JSON.writeValueAsString(body), "unknown field " + unknown);
      }
      case 3 -> {
        String text = JSON.writeValueAsString(body);
        String first = body.keySet().iterator().next();
        String dup = "{\"" + first + "\":" + JSON.writeValueAsString(body.get(first)) + ",";
        return json(path, dup + text.substring(1), "duplicate " + first);
      }
      case 4 -> {
        String text = JSON.writeValueAsString(body);
        return json(path, text.substring(0, 1 + r.nextInt(text.length() - 2)), "truncated");
      }
      case 5 -> {
        String[] notObjects = {"[]", "1", "\"x\"", "null", "true", "[{}]", "{}}", "{\"a\":}"};
        String b = notObjects[r.nextInt(notObjects.length)];
        if (!path.equals("/api/v1/migrations") && b.equals("null")) {
          b = "[null]";
        }
        return json(path, b, "not an object");
      }
      case 6 -> {
        if (!path.equals("/api/v1/migrations")) {
          return json(path, "{\"deadline\":", "truncated");
        }
        String f = List.of("vm", "source", "destination").get(r.nextInt(3));
        body.put(f, badName(r));
        return json(path, JSON.writeValueAsString(body), "bad name in " + f);
      }
      case 7 -> {
        if (path.equals("/api/v1/migrations")) {
          body.put("destination", "host" + (4 + r.nextInt(90)));
          return json(path, JSON.writeValueAsString(body), "unknown host");
        }
        options.put(
            "deadline", Instant.now().plus(Duration.ofDays(31 + r.nextInt(3000))).toString());
        return json(path, JSON.writeValueAsString(body), "deadline beyond the window");
      }
      default -> {
        // a very long value where a short one belongs
        String f = path.equals("/api/v1/migrations") ? "vm" : "policy";
        body.put(f, "a".repeat(65 + r.nextInt(r.nextInt(10) == 0 ? 100_000 : 500)));
        return json(path, JSON.writeValueAsString(body), "long " + f);
      }
    }
  }

  private static String badName(Random r) {
    String part = BAD_NAME_PARTS[r.nextInt(BAD_NAME_PARTS.length)];
    int at = r.nextInt(3);
    return at == 0 ? part + "vm" : at == 1 ? "vm" + part + "a" : "vm-a" + part;
  }

  private static Request wrongContentType(Random r) throws Exception {
    String path = BODY_PATHS.get(r.nextInt(BODY_PATHS.size()));
    String[] types = {
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/xml",
      "text/html"
    };
    return new Request(
        "POST",
        path,
        types[r.nextInt(types.length)],
        JSON.writeValueAsString(validBody(path)),
        TOKEN,
        null,
        "not JSON by its Content-Type");
  }

  private static Request badPath(Random r) {
    String[] paths = {
      "/api/v1/migrations/../events",
      "/api/v1/migrations/%2e%2e/events",
      "/api/v1/migrations/%2E%2e/events",
      "/api/v1/./hosts",
      "/api/v1/hosts/host1/../../events",
      "/api/v1/migrations/m-1/./events",
      "/api/v1/migrations/" + "m".repeat(65),
      "/api/v1/migrations/m%3Bid",
      "/api/v1/migrations/m%20x",
      "/api/v1/vms/vm%24%28id%29",
      "/api/v1/vms/" + "v".repeat(65),
      "/api/v1/drains/d%0Ax",
      "/api/v1/hosts/ho%2Fst/drain",
      "/api/v1/hosts/-host/drain",
      "/api/v1/nothing",
      "/api/v2/migrations",
    };
    String p = paths[r.nextInt(paths.length)];
    String method = p.contains("/drain") && !p.contains("drains") ? "POST" : "GET";
    return new Request(
        method,
        p,
        method.equals("POST") ? "application/json" : null,
        method.equals("POST") ? "{}" : null,
        TOKEN,
        null,
        "bad path");
  }

  private static Request badQuery(Random r) {
    String[] queries = {
      "active=maybe",
      "active=1",
      "active=",
      "active=TRUE",
      "limit=-1",
      "limit=10001",
      "limit=1.5",
      "limit=x",
      "limit=99999999999999999999",
      "limit="
    };
    if (r.nextInt(4) == 0) {
      String reason = r.nextBoolean() ? "x".repeat(201 + r.nextInt(5000)) : "a%0Ab%00";
      return new Request(
          "DELETE",
          "/api/v1/migrations/m-0123456789abcdef?reason=" + reason,
          null,
          null,
          TOKEN,
          null,
          "bad reason");
    }
    return new Request(
        "GET",
        "/api/v1/migrations?" + queries[r.nextInt(queries.length)],
        null,
        null,
        TOKEN,
        null,
        "bad query");
  }

  private static Request badIdempotencyKey(Random r) throws Exception {
    String[] keys = {"a b", "../x", "k;rm", "-k", "k".repeat(65), "k$", "k:1"};
    return new Request(
        "POST",
        "/api/v1/migrations",
        "application/json",
        JSON.writeValueAsString(validBody("/api/v1/migrations")),
        TOKEN,
        keys[r.nextInt(keys.length)],
        "bad Idempotency-Key");
  }

  private static Request badToken(Random r) throws Exception {
    String path = BODY_PATHS.get(r.nextInt(BODY_PATHS.size()));
    String[] tokens = {"", "wrong", TOKEN + "x", TOKEN.substring(1), "host9-driver-token"};
    return new Request(
        "POST",
        path,
        "application/json",
        JSON.writeValueAsString(validBody(path)),
        tokens[r.nextInt(tokens.length)],
        null,
        "bad token");
  }

  private static JsonNode read(String path) throws Exception {
    HttpResponse<String> r = send(new Request("GET", path, null, null, TOKEN, null, "a read"));
    assertEquals(200, r.statusCode(), path + ": " + r.body());
    return JSON.readTree(r.body());
  }

  private static HttpResponse<String> send(Request q) throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(fixture.base + q.path()))
            .timeout(Duration.ofSeconds(20))
            .method(
                q.method(),
                q.body() == null
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(q.body()));
    if (q.contentType() != null) {
      b.header("Content-Type", q.contentType());
    }
    if (!q.token().isEmpty()) {
      b.header("Authorization", "Bearer " + q.token());
    }
    if (q.idempotencyKey() != null) {
      b.header("Idempotency-Key", q.idempotencyKey());
    }
    return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }
}
