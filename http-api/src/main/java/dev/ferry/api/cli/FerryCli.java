package dev.ferry.api.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * The operators' command line: every command is one or two calls to a node's HTTP API, so it works
 * from any machine that reaches the API. Exit status: 0 done, 1 refused or ended otherwise than
 * completed, 2 bad usage.
 */
@Command(
    name = "ferry",
    mixinStandardHelpOptions = true,
    version = "ferry 0.1.0",
    description =
        "Live-migrate VMs with their local disks and snapshots, drain and rebalance hosts.",
    subcommands = {
      FerryCli.Submit.class,
      FerryCli.ListJobs.class,
      FerryCli.Watch.class,
      FerryCli.Cancel.class,
      FerryCli.Hosts.class,
      FerryCli.Drain.class,
      FerryCli.Drains.class,
      FerryCli.CancelDrain.class,
      FerryCli.Enable.class,
      FerryCli.Plan.class,
      FerryCli.Apply.class
    })
public final class FerryCli {
  static final int DONE = 0;
  static final int NOT_DONE = 1;

  @Option(
      names = "--url",
      description = "the API (default: $FERRY_URL, else ${DEFAULT-VALUE})",
      defaultValue = "${env:FERRY_URL:-http://127.0.0.1:8480}")
  String url;

  @Option(
      names = "--cacert",
      description = "the CA (PEM) that signed an https API's certificate (default: $FERRY_CA_FILE)",
      defaultValue = "${env:FERRY_CA_FILE}")
  Path caFile;

  @Option(
      names = "--token-file",
      description =
          "file holding the bearer token (default: $FERRY_API_TOKEN, else $FERRY_API_TOKEN_FILE,"
              + " else /etc/ferry/api-token)")
  Path tokenFile;

  @Option(
      names = "--poll",
      description = "seconds between polls while watching a drain (default ${DEFAULT-VALUE})",
      defaultValue = "1")
  double pollSeconds;

  PrintStream out = System.out;
  PrintStream err = System.err;
  boolean terminal = System.console() != null;

  /** Runs the command line; returns the exit status. */
  public static int run(String[] args, PrintStream out, PrintStream err, boolean terminal) {
    FerryCli cli = new FerryCli();
    cli.out = out;
    cli.err = err;
    cli.terminal = terminal;
    CommandLine cl = new CommandLine(cli);
    cl.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
    cl.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
    cl.setExecutionExceptionHandler(
        (e, line, parsed) -> {
          if (e instanceof ApiClient.ApiError) {
            err.println("ferry: " + e.getMessage());
            return NOT_DONE;
          }
          throw e;
        });
    return cl.execute(args);
  }

  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err, System.console() != null));
  }

  ApiClient client() {
    return new ApiClient(url, token(), caFile);
  }

  private String token() {
    String env = System.getenv("FERRY_API_TOKEN");
    if (tokenFile == null && env != null && !env.isBlank()) {
      return env;
    }
    Path file = tokenFile;
    if (file == null) {
      String f = System.getenv("FERRY_API_TOKEN_FILE");
      file = Path.of(f == null || f.isBlank() ? "/etc/ferry/api-token" : f);
    }
    try {
      return Files.isReadable(file) ? Files.readString(file).strip() : null;
    } catch (IOException e) {
      return null;
    }
  }

  /** Options shared by submit, drain and rebalance: what the migrations are asked to do. */
  static final class MoveOptions {
    @Option(names = "--strategy", description = "overlay, suspend-sync or cold")
    String strategy;

    @Option(names = "--bandwidth", description = "bytes per second for copies and memory")
    Long bandwidth;

    @Option(names = "--max-downtime-ms", description = "libvirt's max downtime")
    Long maxDowntimeMillis;

    ObjectNode toJson() {
      ObjectNode o = ApiClient.JSON.createObjectNode();
      if (strategy != null) {
        o.put("strategy", strategy);
      }
      if (bandwidth != null) {
        o.put("bandwidth", bandwidth);
      }
      if (maxDowntimeMillis != null) {
        o.put("maxDowntimeMillis", maxDowntimeMillis);
      }
      return o;
    }
  }

  // ---------------------------------------------------------------- migrations

  @Command(name = "submit", description = "Queue a migration; with --watch, follow it to its end.")
  static final class Submit implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Parameters(index = "0", paramLabel = "VM")
    String vm;

    @Parameters(index = "1", paramLabel = "SOURCE")
    String source;

    @Parameters(index = "2", paramLabel = "DESTINATION")
    String destination;

    @CommandLine.Mixin MoveOptions options;

    @Option(
        names = "--deadline",
        description = "ISO-8601 instant: roll back if not switched by then")
    String deadline;

    @Option(
        names = "--watch",
        description = "show progress until it ends; exit 0 only if completed")
    boolean watch;

    @Override
    public Integer call() {
      ObjectNode body =
          ApiClient.JSON
              .createObjectNode()
              .put("vm", vm)
              .put("source", source)
              .put("destination", destination);
      ObjectNode o = options.toJson();
      if (deadline != null) {
        o.put("deadline", deadline);
      }
      body.set("options", o);
      JsonNode job = cli.client().call("POST", "/api/v1/migrations", body);
      String id = job.path("id").asText();
      cli.out.println(id);
      return watch ? cli.watchJob(id) : DONE;
    }
  }

  @Command(name = "list", description = "Recent migrations, with their state or outcome.")
  static final class ListJobs implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Option(names = "--active", description = "only queued and running ones")
    boolean active;

    @Option(names = "--limit", defaultValue = "50")
    int limit;

    @Override
    public Integer call() {
      JsonNode jobs =
          cli.client()
              .call("GET", "/api/v1/migrations?active=" + active + "&limit=" + limit, null)
              .path("jobs");
      cli.out.printf("%-20s %-16s %-10s %-10s %-10s %s%n", "ID", "VM", "SOURCE", "TO", "STATE", "");
      for (JsonNode j : jobs) {
        JsonNode r = j.path("request");
        String to = r.path("destination").asText("");
        if (to.isEmpty()) {
          to = j.path("result").path("runningOn").asText("?");
        }
        cli.out.printf(
            "%-20s %-16s %-10s %-10s %-10s %s%n",
            j.path("id").asText(),
            r.path("vm").asText(),
            r.path("source").asText(),
            to,
            j.path("state").asText(),
            j.path("state").asText().equals("running")
                ? j.path("progress").path("phase").asText("")
                : j.path("result").path("message").asText(j.path("message").asText("")));
      }
      return DONE;
    }
  }

  @Command(name = "watch", description = "Follow a migration with a progress bar until it ends.")
  static final class Watch implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Parameters(paramLabel = "ID")
    String id;

    @Override
    public Integer call() {
      return cli.watchJob(id);
    }
  }

  @Command(
      name = "cancel",
      description =
          "Cancel a migration: a queued one ends at once, a running one rolls back (refused after"
              + " its switchover).")
  static final class Cancel implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Parameters(paramLabel = "ID")
    String id;

    @Override
    public Integer call() {
      JsonNode job = cli.client().call("DELETE", "/api/v1/migrations/" + id, null);
      cli.out.println(id + ": " + job.path("state").asText());
      return DONE;
    }
  }

  /** Follows the job's event stream; polls if the stream breaks. */
  int watchJob(String id) {
    ApiClient api = client();
    ProgressView view = new ProgressView(out, terminal);
    JsonNode[] last = {null};
    for (int attempt = 0; attempt < 1000; attempt++) {
      boolean ended =
          api.events(
              "/api/v1/migrations/" + id + "/events",
              job -> {
                last[0] = job;
                view.draw(List.of(ProgressView.line(label(job), job, "", "")));
                return terminal(job);
              });
      if (ended) {
        break;
      }
      JsonNode job = api.call("GET", "/api/v1/migrations/" + id, null);
      last[0] = job;
      if (terminal(job)) {
        break;
      }
      sleep();
    }
    JsonNode job = last[0];
    if (job == null || !terminal(job)) {
      err.println("ferry: " + id + " has not ended");
      return NOT_DONE;
    }
    out.println(
        id + " " + job.path("state").asText() + ": " + job.path("result").path("message").asText());
    return job.path("state").asText().equals("completed") ? DONE : NOT_DONE;
  }

  private static String label(JsonNode job) {
    return job.path("request").path("vm").asText("?");
  }

  static boolean terminal(JsonNode job) {
    String s = job.path("state").asText("");
    return !s.isEmpty() && !s.equals("queued") && !s.equals("running");
  }

  private void sleep() {
    try {
      Thread.sleep((long) (pollSeconds * 1000));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApiClient.ApiError("interrupted");
    }
  }

  // ---------------------------------------------------------------- hosts and drains

  @Command(name = "hosts", description = "Hosts with capacity, load and migration slots.")
  static final class Hosts implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Override
    public Integer call() {
      JsonNode hosts = cli.client().call("GET", "/api/v1/hosts", null).path("hosts");
      cli.out.printf(
          "%-12s %-9s %4s %9s %12s %14s %8s %8s%n",
          "HOST", "STATE", "VMS", "VCPUS", "FREE MEM", "FREE DISK", "OUT", "IN");
      for (JsonNode h : hosts) {
        cli.out.printf(
            "%-12s %-9s %4d %4d/%-4d %8dMiB %10dMiB %4d/%-3d %4d/%-3d%n",
            h.path("host").asText(),
            h.path("reachable").asBoolean() ? h.path("state").asText() : "unreachable",
            h.path("vms").asInt(),
            h.path("vcpusInUse").asInt(),
            h.path("cpus").asInt(),
            h.path("freeMemoryBytes").asLong() >> 20,
            h.path("datastoreFreeBytes").asLong() >> 20,
            h.path("outbound").asInt(),
            h.path("outboundCap").asInt(),
            h.path("inbound").asInt(),
            h.path("inboundCap").asInt());
      }
      return DONE;
    }
  }

  @Command(
      name = "drain",
      description =
          "Move every VM off a host (it takes no new VMs until enabled); with --watch, follow it.")
  static final class Drain implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Parameters(paramLabel = "HOST")
    String host;

    @Option(names = "--deadline", description = "ISO-8601 instant: give up what has not moved")
    String deadline;

    @Option(
        names = "--cold-fallback",
        description = "shut down and move cold a VM whose live attempts all rolled back")
    boolean coldFallback;

    @CommandLine.Mixin MoveOptions options;

    @Option(
        names = "--watch",
        description = "show progress until it ends; exit 0 only if completed")
    boolean watch;

    @Override
    public Integer call() {
      ObjectNode body = ApiClient.JSON.createObjectNode().put("coldFallback", coldFallback);
      if (deadline != null) {
        body.put("deadline", deadline);
      }
      body.set("options", options.toJson());
      JsonNode drain = cli.client().call("POST", "/api/v1/hosts/" + host + "/drain", body);
      String id = drain.path("id").asText();
      cli.out.println(id);
      return watch ? cli.watchDrain(id) : DONE;
    }
  }

  @Command(name = "drains", description = "List drains, or show one with its per-VM report.")
  static final class Drains implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Parameters(paramLabel = "ID", arity = "0..1")
    String id;

    @Override
    public Integer call() {
      ApiClient api = cli.client();
      if (id != null) {
        cli.report(api.call("GET", "/api/v1/drains/" + id, null));
        return DONE;
      }
      for (JsonNode d : api.call("GET", "/api/v1/drains", null).path("drains")) {
        cli.out.printf(
            "%-16s %-12s %-10s %s%n",
            d.path("id").asText(),
            d.path("request").path("host").asText(),
            d.path("state").asText(),
            d.path("message").asText(""));
      }
      return DONE;
    }
  }

  @Command(
      name = "cancel-drain",
      description = "Cancel a drain: queued moves stop, running ones finish or roll back.")
  static final class CancelDrain implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Parameters(paramLabel = "ID")
    String id;

    @Override
    public Integer call() {
      JsonNode d = cli.client().call("DELETE", "/api/v1/drains/" + id, null);
      cli.out.println(id + ": " + d.path("state").asText());
      return DONE;
    }
  }

  @Command(name = "enable", description = "Let a drained host take VMs again.")
  static final class Enable implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Parameters(paramLabel = "HOST")
    String host;

    @Override
    public Integer call() {
      cli.client().call("POST", "/api/v1/hosts/" + host + "/enable", null);
      cli.out.println(host + ": enabled");
      return DONE;
    }
  }

  /** Polls the drain and its migrations, one progress bar per VM, until it ends. */
  int watchDrain(String id) {
    ApiClient api = client();
    ProgressView view = new ProgressView(out, terminal);
    JsonNode drain = api.call("GET", "/api/v1/drains/" + id, null);
    while (drain.path("state").asText().equals("running")) {
      List<String> lines = new ArrayList<>();
      for (JsonNode vm : drain.path("vms")) {
        String jobId = vm.path("jobId").asText("");
        JsonNode job =
            jobId.isEmpty()
                ? ApiClient.JSON.createObjectNode().put("state", "queued")
                : api.call("GET", "/api/v1/migrations/" + jobId, null);
        lines.add(
            ProgressView.line(
                vm.path("vm").asText(),
                job,
                vm.path("status").asText(),
                vm.path("destination").asText("")));
      }
      view.draw(lines);
      sleep();
      drain = api.call("GET", "/api/v1/drains/" + id, null);
    }
    report(drain);
    return drain.path("state").asText().equals("completed") ? DONE : NOT_DONE;
  }

  void report(JsonNode drain) {
    out.println(
        "drain "
            + drain.path("id").asText()
            + " of "
            + drain.path("request").path("host").asText()
            + ": "
            + drain.path("state").asText()
            + (drain.path("message").asText("").isEmpty()
                ? ""
                : " (" + drain.path("message").asText() + ")"));
    for (JsonNode vm : drain.path("vms")) {
      out.printf(
          "  %-16s %-10s %-10s attempts %d  %s%n",
          vm.path("vm").asText(),
          vm.path("status").asText(),
          vm.path("destination").asText("-").isEmpty() ? "-" : vm.path("destination").asText(),
          vm.path("attempts").asInt(),
          vm.path("message").asText(""));
    }
  }

  // ---------------------------------------------------------------- rebalancing

  /** What a rebalance is asked for. */
  abstract static class Rebalance implements Callable<Integer> {
    @ParentCommand FerryCli cli;

    @Option(names = "--policy", defaultValue = "balance", description = "balance or pack")
    String policy;

    @Option(names = "--threshold", description = "spread of memory use to tolerate (0..1)")
    Double threshold;

    @Option(names = "--max-moves")
    Integer maxMoves;

    ObjectNode body() {
      ObjectNode b = ApiClient.JSON.createObjectNode().put("policy", policy);
      if (threshold != null) {
        b.put("threshold", threshold);
      }
      if (maxMoves != null) {
        b.put("maxMoves", maxMoves);
      }
      return b;
    }

    void print(JsonNode plan) {
      cli.out.printf(
          "%s: %d move(s), %d MiB to copy, spread %.3f -> %.3f%s%n",
          plan.path("policy").asText(),
          plan.path("moves").size(),
          plan.path("totalBytes").asLong() >> 20,
          plan.path("spreadBefore").asDouble(),
          plan.path("spreadAfter").asDouble(),
          plan.path("message").asText("").isEmpty()
              ? ""
              : " (" + plan.path("message").asText() + ")");
      for (JsonNode m : plan.path("moves")) {
        cli.out.printf(
            "  %-16s %-10s -> %-10s %8d MiB  benefit %.3f  %s%n",
            m.path("vm").asText(),
            m.path("source").asText(),
            m.path("destination").asText(),
            m.path("bytes").asLong() >> 20,
            m.path("benefit").asDouble(),
            m.path("jobId").asText(""));
      }
    }
  }

  @Command(
      name = "plan",
      description = "Dry run: the moves a rebalance would make, with their cost.")
  static final class Plan extends Rebalance {
    @Override
    public Integer call() {
      print(cli.client().call("POST", "/api/v1/rebalance/plan", body()));
      return DONE;
    }
  }

  @Command(name = "apply", description = "Plan a rebalance and queue its moves.")
  static final class Apply extends Rebalance {
    @Override
    public Integer call() {
      print(cli.client().call("POST", "/api/v1/rebalance/apply", body()));
      return DONE;
    }
  }
}
