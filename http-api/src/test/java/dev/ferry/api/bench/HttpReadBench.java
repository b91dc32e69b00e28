package dev.ferry.api.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.api.ApiFixture;
import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * HTTP read throughput (not a test): the API over a real scheduler with fake agents, one migration
 * running, and {@code wrk} reading {@code GET /api/v1/migrations/{id}} on loopback with the bearer
 * token. Adds {@code http_reads_per_s} to the scheduler benchmark's JSON and a line to its
 * Markdown: {@code bench/scheduler-bench} runs it after {@link
 * dev.ferry.node.scheduler.SchedulerBench}.
 */
public final class HttpReadBench {
  private static final String TOKEN = "bench-token-0123456789abcdef";
  private static final Pattern RATE = Pattern.compile("Requests/sec:\\s+([0-9.]+)");

  private HttpReadBench() {}

  public static void main(String[] args) throws Exception {
    Path out = Path.of("bench/results/scheduler-bench.json");
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--out")) {
        out = Path.of(args[++i]);
      }
    }
    try (ApiFixture api = ApiFixture.start(TOKEN)) {
      HttpResponse<String> submitted =
          HttpClient.newHttpClient()
              .send(
                  HttpRequest.newBuilder(URI.create(api.base + "/api/v1/migrations"))
                      .header("Authorization", "Bearer " + TOKEN)
                      .header("Content-Type", "application/json")
                      .POST(
                          HttpRequest.BodyPublishers.ofString(
                              "{\"vm\":\"vm-a\",\"source\":\"host1\",\"destination\":\"host2\"}"))
                      .build(),
                  HttpResponse.BodyHandlers.ofString());
      String id = new ObjectMapper().readTree(submitted.body()).get("id").asText();
      api.host1.starts.receiveMessage(Duration.ofSeconds(10)); // it runs (the fake never ends it)
      String url = api.base + "/api/v1/migrations/" + id;
      // two wrk threads for two cores, 64 connections kept alive, 5 s warm-up then 15 s measured
      List<String> wrk =
          List.of("wrk", "-t2", "-c64", "-H", "Authorization: Bearer " + TOKEN, "--latency");
      run(wrk, "-d5s", url);
      ProcessRunner.Output measured = run(wrk, "-d15s", url);
      Matcher m = RATE.matcher(measured.stdout());
      if (!m.find()) {
        throw new IllegalStateException("no Requests/sec in wrk's output:\n" + measured.stdout());
      }
      double rate = Double.parseDouble(m.group(1));
      System.out.println(measured.stdout());

      ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
      ObjectNode report =
          Files.exists(out) ? (ObjectNode) json.readTree(out.toFile()) : json.createObjectNode();
      report.put("http_reads_per_s", Math.round(rate));
      report.put("http_tool", "wrk -t2 -c64 -d15s, loopback, bearer token, one running migration");
      json.writeValue(out.toFile(), report);
      Path md = Path.of(out.toString().replaceAll("\\.json$", "") + ".md");
      Files.writeString(
          md,
          (Files.exists(md) ? Files.readString(md) : "")
              + "\nHTTP reads of GET /api/v1/migrations/{id} on loopback (wrk -t2 -c64, 15 s,"
              + " bearer token, the API and wrk on the same 2 cores): "
              + Math.round(rate)
              + " per second (target >= 5000).\n");
      System.out.println("http_reads_per_s " + Math.round(rate));
    }
    System.exit(0);
  }

  private static ProcessRunner.Output run(List<String> wrk, String duration, String url) {
    List<String> argv = new java.util.ArrayList<>(wrk);
    argv.add(duration);
    argv.add(url);
    ProcessRunner.Output o =
        new LocalProcessRunner()
            .capture(ProcessSpec.of(argv).withSecret(TOKEN).withTimeout(Duration.ofMinutes(2)));
    o.stdoutOrThrow();
    return o;
  }
}
