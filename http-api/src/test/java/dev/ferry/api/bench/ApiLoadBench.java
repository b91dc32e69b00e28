package dev.ferry.api.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.api.ApiFixture;
import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The API under load (not a test): a real scheduler over fake agents, one migration running, 200
 * event streams held open (half the cluster overview, half the migration's own), and in one run:
 *
 * <ul>
 *   <li>{@code GET /health/live} (the server's floor: no auth, no scheduler) as the baseline;
 *   <li>{@code GET /api/v1/hosts} and {@code GET /api/v1/migrations/{id}} with the token;
 *   <li>invalid submissions ({@code strategy: 2}, once a cold migration) at full rate: every answer
 *       must be a 4xx, and afterwards no job, drain or agent start may exist beyond the one
 *       running.
 * </ul>
 *
 * Writes {@code bench/results/api-load.json} and {@code .md}. Run by {@code bench/api-load}.
 */
public final class ApiLoadBench {
  private static final String TOKEN = "bench-token-0123456789abcdef";
  private static final int STREAMS = 200;
  private static final Pattern RATE = Pattern.compile("Requests/sec:\\s+([0-9.]+)");
  private static final Pattern P99 = Pattern.compile("\\s99%\\s+([0-9.]+)(us|ms|s)");
  private static final Pattern P50 = Pattern.compile("\\s50%\\s+([0-9.]+)(us|ms|s)");
  private static final Pattern COUNTS =
      Pattern.compile("statuses 2xx=(\\d+) 4xx=(\\d+) 5xx=(\\d+)");

  private ApiLoadBench() {}

  record Leg(String name, double perSecond, double p50Ms, double p99Ms, String output) {}

  public static void main(String[] args) throws Exception {
    Path out = Path.of("bench/results/api-load.json");
    String duration = "15s";
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--out")) {
        out = Path.of(args[++i]);
      } else if (args[i].equals("--quick")) {
        duration = "5s";
      }
    }
    ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    HttpClient http = HttpClient.newHttpClient();
    try (ApiFixture api = ApiFixture.start(TOKEN)) {
      HttpResponse<String> submitted =
          http.send(
              post(
                  api.base + "/api/v1/migrations",
                  "{\"vm\":\"vm-a\",\"source\":\"host1\",\"destination\":\"host2\"}"),
              HttpResponse.BodyHandlers.ofString());
      String id = json.readTree(submitted.body()).get("id").asText();
      api.host1.starts.receiveMessage(Duration.ofSeconds(10)); // it runs; the fake never ends it

      AtomicLong streamed = new AtomicLong();
      List<InputStream> open = new java.util.concurrent.CopyOnWriteArrayList<>();
      List<CompletableFuture<?>> streams = new ArrayList<>();
      for (int i = 0; i < STREAMS; i++) {
        String path = i % 2 == 0 ? "/api/v1/events" : "/api/v1/migrations/" + id + "/events";
        streams.add(
            http.sendAsync(
                    HttpRequest.newBuilder(URI.create(api.base + path))
                        .header("Authorization", "Bearer " + TOKEN)
                        .build(),
                    HttpResponse.BodyHandlers.ofInputStream())
                .thenAccept(
                    r -> {
                      open.add(r.body());
                      drain(r.body(), streamed);
                    }));
      }
      Thread.sleep(2000);
      long streamedBefore = streamed.get();

      Path lua = Files.createTempFile("api-load", ".lua");
      Files.writeString(lua, LUA);
      List<Leg> legs = new ArrayList<>();
      legs.add(wrk("health (no auth, no scheduler)", api.base + "/health/live", duration, null));
      legs.add(wrk("GET /api/v1/hosts", api.base + "/api/v1/hosts", duration, null));
      legs.add(
          wrk(
              "GET /api/v1/migrations/{id}",
              api.base + "/api/v1/migrations/" + id,
              duration,
              null));
      Leg invalid = wrk("POST invalid submissions", api.base + "/api/v1/migrations", duration, lua);
      legs.add(invalid);
      long streamedDuring = streamed.get() - streamedBefore;

      Matcher c = COUNTS.matcher(invalid.output());
      long ok = -1;
      long refused = -1;
      long failed = -1;
      if (c.find()) {
        ok = Long.parseLong(c.group(1));
        refused = Long.parseLong(c.group(2));
        failed = Long.parseLong(c.group(3));
      }
      JsonNode jobs =
          json.readTree(
              http.send(get(api.base + "/api/v1/migrations"), HttpResponse.BodyHandlers.ofString())
                  .body());
      JsonNode drains =
          json.readTree(
              http.send(get(api.base + "/api/v1/drains"), HttpResponse.BodyHandlers.ofString())
                  .body());
      int startsAfter = 0;
      try {
        while (true) {
          // the running job's runner asks its silent fake agent again now and then: same id
          if (!api.host1.starts.receiveMessage(Duration.ofMillis(300)).migrationId().equals(id)) {
            startsAfter++;
          }
        }
      } catch (AssertionError none) {
        // no further start
      }
      for (InputStream in : open) {
        in.close();
      }

      ObjectNode report = json.createObjectNode();
      report.put("streams_held", STREAMS);
      report.put("stream_lines_during_load", streamedDuring);
      report.put("duration", duration);
      report.put("cores", Runtime.getRuntime().availableProcessors());
      var legsJson = report.putArray("legs");
      for (Leg l : legs) {
        legsJson
            .addObject()
            .put("name", l.name())
            .put("requests_per_s", Math.round(l.perSecond()))
            .put("p50_ms", l.p50Ms())
            .put("p99_ms", l.p99Ms());
      }
      report.put("invalid_2xx", ok);
      report.put("invalid_4xx", refused);
      report.put("invalid_5xx", failed);
      report.put("jobs_after", jobs.path("jobs").size());
      report.put("drains_after", drains.path("drains").size());
      report.put("agent_starts_after", startsAfter);
      double hosts = legs.get(1).perSecond();
      report.put("target_hosts_reads_per_s", 10_000);
      report.put(
          "target_met",
          hosts >= 10_000
              && ok == 0
              && failed == 0
              && jobs.path("jobs").size() == 1
              && drains.path("drains").size() == 0
              && startsAfter == 0);
      Files.createDirectories(out.toAbsolutePath().getParent());
      json.writeValue(out.toFile(), report);
      Files.writeString(
          Path.of(out.toString().replaceAll("\\.json$", "") + ".md"), markdown(report, legs));
      System.out.println(json.writeValueAsString(report));
    }
    System.exit(0);
  }

  private static String markdown(ObjectNode r, List<Leg> legs) {
    StringBuilder md = new StringBuilder();
    md.append("# API load\n\n");
    md.append(
            "`bench/api-load`: the API over a real scheduler and fake agents, one migration running, ")
        .append(r.get("streams_held").asInt())
        .append(" event streams held open (they carried ")
        .append(r.get("stream_lines_during_load").asLong())
        .append(" lines of events during the load), wrk -t2 -c64 for ")
        .append(r.get("duration").asText())
        .append(" per leg, wrk and the API on the same ")
        .append(r.get("cores").asInt())
        .append(" cores, loopback.\n\n| leg | requests/s | p50 ms | p99 ms |\n|---|---|---|---|\n");
    for (Leg l : legs) {
      md.append(
          String.format(
              Locale.ROOT,
              "| %s | %d | %.2f | %.2f |%n",
              l.name(),
              Math.round(l.perSecond()),
              l.p50Ms(),
              l.p99Ms()));
    }
    md.append("\nInvalid submissions (`\"strategy\": 2`, which once started a cold migration): ")
        .append(r.get("invalid_2xx").asLong())
        .append(" answered 2xx, ")
        .append(r.get("invalid_4xx").asLong())
        .append(" 4xx, ")
        .append(r.get("invalid_5xx").asLong())
        .append(" 5xx; afterwards ")
        .append(r.get("jobs_after").asInt())
        .append(" job (the one started before the load), ")
        .append(r.get("drains_after").asInt())
        .append(" drains, ")
        .append(r.get("agent_starts_after").asInt())
        .append(" agent starts of any other migration.\n\n")
        .append(
            "Target: GET /api/v1/hosts >= 10,000 requests/s with the streams held, no 2xx or 5xx")
        .append(" for invalid input, nothing started: ")
        .append(r.get("target_met").asBoolean() ? "met" : "NOT met")
        .append(".\n");
    return md.toString();
  }

  private static void drain(InputStream in, AtomicLong events) {
    byte[] buf = new byte[8192];
    try (in) {
      int n;
      while ((n = in.read(buf)) > 0) {
        for (int i = 0; i < n; i++) {
          if (buf[i] == '\n') {
            events.incrementAndGet();
          }
        }
      }
    } catch (java.io.IOException e) {
      // the stream was cancelled at the end
    }
  }

  private static HttpRequest get(String url) {
    return HttpRequest.newBuilder(URI.create(url))
        .header("Authorization", "Bearer " + TOKEN)
        .build();
  }

  private static HttpRequest post(String url, String body) {
    return HttpRequest.newBuilder(URI.create(url))
        .header("Authorization", "Bearer " + TOKEN)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body))
        .build();
  }

  /** Counts the answers by class in each thread and prints the sums at the end. */
  private static final String LUA =
      """
      wrk.method = "POST"
      wrk.body = '{"vm":"vm-b","source":"host1","destination":"host2","options":{"strategy":2}}'
      wrk.headers["Content-Type"] = "application/json"
      local threads = {}
      function setup(thread) table.insert(threads, thread) end
      function init(args) ok = 0; refused = 0; failed = 0 end
      function response(status, headers, body)
        if status >= 500 then failed = failed + 1
        elseif status >= 400 then refused = refused + 1
        else ok = ok + 1 end
      end
      function done(summary, latency, requests)
        local o, r, f = 0, 0, 0
        for _, t in ipairs(threads) do
          o = o + t:get("ok"); r = r + t:get("refused"); f = f + t:get("failed")
        end
        io.write(string.format("statuses 2xx=%d 4xx=%d 5xx=%d\\n", o, r, f))
      end
      """;

  private static Leg wrk(String name, String url, String duration, Path script) {
    List<String> argv =
        new ArrayList<>(
            List.of("wrk", "-t2", "-c64", "--latency", "-H", "Authorization: Bearer " + TOKEN));
    if (script != null) {
      argv.addAll(List.of("-s", script.toString()));
    }
    List<String> warm = new ArrayList<>(argv);
    warm.addAll(List.of("-d3s", url));
    capture(warm);
    argv.addAll(List.of("-d" + duration, url));
    String o = capture(argv);
    System.out.println(name + ":\n" + o);
    Matcher m = RATE.matcher(o);
    if (!m.find()) {
      throw new IllegalStateException("no Requests/sec in wrk's output:\n" + o);
    }
    return new Leg(name, Double.parseDouble(m.group(1)), ms(P50, o), ms(P99, o), o);
  }

  private static double ms(Pattern p, String o) {
    Matcher m = p.matcher(o);
    if (!m.find()) {
      return -1;
    }
    double v = Double.parseDouble(m.group(1));
    return switch (m.group(2)) {
      case "us" -> v / 1000;
      case "s" -> v * 1000;
      default -> v;
    };
  }

  private static String capture(List<String> argv) {
    ProcessRunner.Output o =
        new LocalProcessRunner()
            .capture(ProcessSpec.of(argv).withSecret(TOKEN).withTimeout(Duration.ofMinutes(3)));
    return o.stdoutOrThrow();
  }
}
