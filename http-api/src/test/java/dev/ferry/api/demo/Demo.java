package dev.ferry.api.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.api.cli.ProgressView;
import dev.ferry.api.it.ControlNode;
import dev.ferry.node.testbed.Cluster;
import dev.ferry.node.testbed.GuestChecks;
import dev.ferry.node.testbed.Testbed;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The README's main job: a three-host test bed with one agent per host and a control node
 * (scheduler + API, H2 journal), three guests on host1 (one with two internal snapshots taken while
 * running, one with two disks, one raw), a drain of host1 through the HTTP API with a progress bar
 * per migration, and a report per VM: where it runs, its paused window, snapshots verified by
 * revert, guest data verified by the guest's own record check.
 *
 * <p>{@code scripts/demo.sh [--keep]}: {@code --keep} leaves the bed and the nodes up.
 */
public final class Demo {
  private static final List<String> HOSTS = List.of("host1", "host2", "host3");
  private static final ObjectMapper json = new ObjectMapper();
  private static HttpClient http;
  private static String url;
  private static String token;

  private Demo() {}

  record Guest(String name, List<String> snapshots, List<String[]> disks, String what) {}

  public static void main(String[] args) throws Exception {
    boolean keep = List.of(args).contains("--keep");
    token = "demo-" + Long.toHexString(System.nanoTime()) + "-token";
    say("bringing up a 3-host test bed (namespaces, libvirtd, sshd per host)");
    Testbed bed = Testbed.shared(3);
    if (keep) {
      Testbed.keepOnExit();
    }
    Cluster cluster = null;
    ControlNode control = null;
    int failures = 0;
    try {
      say("starting one Ferry agent per host and a control node (scheduler + API)");
      cluster = Cluster.start(bed, "", HOSTS.toArray(String[]::new));
      control = new ControlNode(bed, token, "ferry.scheduler.inventory.interval = 1s");
      control.wipe();
      control.start();
      url = control.url();
      http = control.httpClient();

      List<Guest> guests =
          List.of(
              new Guest(
                  "web-snap",
                  List.of("snap-0", "snap-1"),
                  List.<String[]>of(new String[] {GuestChecks.disk("web-snap", 0), "qcow2"}),
                  "qcow2, two internal snapshots taken while running"),
              new Guest(
                  "db-2disks",
                  List.of(),
                  List.<String[]>of(
                      new String[] {GuestChecks.disk("db-2disks", 0), "qcow2"},
                      new String[] {GuestChecks.disk("db-2disks", 1), "qcow2"}),
                  "two qcow2 disks"),
              new Guest(
                  "legacy-raw",
                  List.of(),
                  List.<String[]>of(new String[] {GuestChecks.disk("legacy-raw", 0), "raw"}),
                  "one raw disk"));
      say("booting three guests on host1; each writes numbered records to its disks");
      bed.mkvm("host1", "web-snap", "--mem", "128", "--prefill", "64", "--snapshots", "2");
      bed.mkvm("host1", "db-2disks", "--mem", "128", "--prefill", "64", "--extra", "qcow2:320");
      bed.mkvm("host1", "legacy-raw", "--mem", "128", "--prefill", "64", "--format", "raw");
      waitFor(() -> vmsOn("host1") == 3, Duration.ofSeconds(60));

      say("draining host1 through the API: POST " + url + "/api/v1/hosts/host1/drain");
      JsonNode drain = json.readTree(call("POST", "/api/v1/hosts/host1/drain", "{}").body());
      System.out.println("    watch it in a browser: " + url + "/status#token=" + token);
      System.out.println("    or from another shell: " + cli(control) + " drains");
      String id = drain.get("id").asText();
      Map<String, String> jobOf = new LinkedHashMap<>();
      ProgressView progress = new ProgressView(System.out, true);
      while (true) {
        drain = json.readTree(call("GET", "/api/v1/drains/" + id, null).body());
        List<String> lines = new ArrayList<>();
        for (JsonNode v : drain.get("vms")) {
          jobOf.put(v.get("vm").asText(), v.get("jobId").asText());
          JsonNode job =
              json.readTree(
                  call("GET", "/api/v1/migrations/" + v.get("jobId").asText(), null).body());
          lines.add(
              ProgressView.line(
                  v.get("vm").asText(),
                  job,
                  v.path("status").asText(),
                  v.path("destination").asText("")));
        }
        progress.draw(lines);
        if (!drain.get("state").asText().equals("running")) {
          break;
        }
        Thread.sleep(500);
      }
      System.out.println();
      say(
          "drain "
              + id
              + ": "
              + drain.get("state").asText()
              + " ("
              + drain.get("message").asText()
              + ")");

      say("verifying every guest where it runs now (this shuts each down and boots it cold)");
      GuestChecks checks = new GuestChecks(bed);
      List<String> report = new ArrayList<>();
      for (Guest g : guests) {
        JsonNode job =
            json.readTree(call("GET", "/api/v1/migrations/" + jobOf.get(g.name()), null).body());
        JsonNode result = job.path("result");
        String host = result.path("runningOn").asText("?");
        String paused = result.path("pausedMillis").asText("?");
        String strategy = result.path("strategy").asText("?");
        String snaps;
        String data;
        try {
          checks.runsOnlyOn(g.name(), host, HOSTS);
          checks.noWriteLost(host, g.name(), g.disks());
          data = "intact (every record up to the last one written, cold boot check clean)";
        } catch (AssertionError | RuntimeException e) {
          data = "FAILED: " + e.getMessage();
          failures++;
        }
        try {
          if (g.snapshots().isEmpty()) {
            snaps = "none to check";
          } else {
            for (String s : g.snapshots()) {
              checks.revertWorks(host, g.name(), s);
            }
            snaps = "verified by revert: " + String.join(", ", g.snapshots());
          }
        } catch (AssertionError | RuntimeException e) {
          snaps = "FAILED: " + e.getMessage();
          failures++;
        }
        report.add(
            String.format(
                "%-11s %-34s now on %-6s %-13s paused %5s ms%n%13ssnapshots: %s%n%13sguest data: %s",
                g.name(), "(" + g.what() + ")", host, strategy, paused, "", snaps, "", data));
      }
      System.out.println();
      System.out.println("==== Ferry demo report ====");
      report.forEach(System.out::println);
      System.out.println(failures == 0 ? "all VMs verified" : failures + " check(s) FAILED");
      System.out.println();
      System.out.println("logs: " + logs(bed));
      if (keep) {
        System.out.println();
        System.out.println("the bed stays up; what to try next:");
        System.out.println("  " + cli(control) + " hosts        # where the VMs are now");
        System.out.println(
            "  " + cli(control) + " drain host2 --watch   # drain another host, with progress");
        System.out.println("  status page: " + url + "/status#token=" + token);
        System.out.println(
            "  metrics: curl -s " + control.managementUrl() + "/metrics | grep ^ferry_");
        System.out.println("  libvirt on a host: testbed/testbed.sh exec host2 virsh list --all");
        System.out.println("take it all down: testbed/testbed.sh down");
        // the nodes run on without this process (shown by hand: the CLI above still answers);
        // ending it gives the shell back
        System.exit(failures == 0 ? 0 : 1);
      }
    } finally {
      if (!keep) {
        if (control != null) {
          control.stop();
        }
        if (cluster != null) {
          cluster.close();
        }
        say("taking the test bed down");
        bed.down();
      }
    }
    System.exit(failures == 0 ? 0 : 1);
  }

  /** The CLI, as a user would call it against the bed's control node. */
  private static String cli(ControlNode control) {
    return "FERRY_URL="
        + url
        + " FERRY_API_TOKEN="
        + token
        + " FERRY_CA_FILE="
        + control.caFile()
        + " scripts/ferry";
  }

  /** Where this run's logs are: the demo's own, each agent's, the control node's. */
  private static String logs(Testbed bed) {
    return String.join(
        ", ",
        System.getProperty("ferry.demo.log", bed.stateDir().resolve("demo.log").toString()),
        bed.stateDir().resolve("hosts/host*/ferry/agent.log").toString(),
        bed.stateDir().resolve("control/control.log").toString());
  }

  private static int vmsOn(String host) {
    try {
      JsonNode hosts = json.readTree(call("GET", "/api/v1/hosts", null).body());
      for (JsonNode h : hosts.get("hosts")) {
        if (h.get("host").asText().equals(host)) {
          return h.get("vms").asInt();
        }
      }
    } catch (Exception e) {
      // not up yet
    }
    return -1;
  }

  private static void waitFor(java.util.function.BooleanSupplier ok, Duration max)
      throws InterruptedException {
    long end = System.currentTimeMillis() + max.toMillis();
    while (!ok.getAsBoolean()) {
      if (System.currentTimeMillis() > end) {
        throw new IllegalStateException("timed out after " + max);
      }
      Thread.sleep(300);
    }
  }

  private static HttpResponse<String> call(String method, String path, String body)
      throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(url + path))
            .timeout(Duration.ofSeconds(30))
            .header("Authorization", "Bearer " + token)
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

  private static void say(String s) {
    System.out.println("==> " + s);
  }
}
