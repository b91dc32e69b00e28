package dev.ferry.api.it;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Ferry in an OpenNebula cloud, on the test bed's OpenNebula-shaped hosts ({@code
 * testbed/opennebula.sh}): VMs deployed as OpenNebula's local TM and KVM driver deploy them
 * (transient domains named one-ID, UUID deploy ids, {@code //} paths, {@code disk.N ->
 * disk.N.snap/0}), live-migrated by the front-end's own sequence (premigrate, the driver as
 * oneadmin over ssh with the action XML on stdin, postmigrate), then used the way OpenNebula uses
 * them afterwards. Each test checks the guest's writes, {@code virsh list --all} on every host and
 * the driver's exit code against where the VM runs.
 */
class OpenNebulaIT {
  private static final List<String> HOSTS = List.of("host1", "host2", "host3");
  private static final String TOKEN = "one-token-" + Long.toHexString(System.nanoTime()) + "abcdef";
  private static final String DS = "/var/lib/one//datastores/0";
  private static final ObjectMapper json = new ObjectMapper();
  private static HttpClient http;
  private static Testbed bed;
  private static Cluster cluster;
  private static ControlNode control;
  private static GuestChecks checks;
  private final List<String> vmIds = new ArrayList<>();

  @BeforeAll
  static void up() throws Exception {
    bed = Testbed.shared(3);
    cluster = Cluster.start(bed, "", "host1", "host2", "host3");
    checks = new GuestChecks(bed);
    // each hypervisor's driver holds its own host token, never the cluster token
    Path hostTokens = bed.stateDir().resolve("one-host-tokens");
    StringBuilder tokens = new StringBuilder();
    for (String h : HOSTS) {
      tokens.append(h).append(' ').append(driverToken(h)).append('\n');
    }
    Files.writeString(hostTokens, tokens.toString());
    control =
        new ControlNode(
            bed,
            TOKEN,
            "ferry.scheduler.inventory.interval = 1s\n"
                + "ferry.api.auth.host-tokens-file = \""
                + hostTokens
                + "\"");
    control.wipe();
    control.start();
    http = control.httpClient();
    // the driver's settings and token, readable by oneadmin only, as the installer leaves them
    for (String h : HOSTS) {
      Path etc = bed.hostDir(h).resolve("etc-ferry");
      Files.createDirectories(etc);
      Files.writeString(
          etc.resolve("driver.conf"),
          "FERRY_URL="
              + control.url()
              + "\nFERRY_CA_FILE=/etc/ferry/api-ca.crt\nFERRY_PROGRESS_EVERY=0\nFERRY_POLL=1\n");
      Files.copy(
          control.caFile(),
          etc.resolve("api-ca.crt"),
          java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      Files.writeString(etc.resolve("driver-token"), driverToken(h) + "\n");
      bed.execOk(h, "chown", "root:oneadmin", "/etc/ferry/driver-token");
      bed.execOk(h, "chmod", "0640", "/etc/ferry/driver-token");
    }
    bed.oneOk("sync", bed.repo().resolve("drivers/opennebula").toString());
    await()
        .atMost(Duration.ofSeconds(60))
        .pollInterval(Duration.ofMillis(500))
        .until(() -> hostsKnown() == 3);
  }

  private static String driverToken(String host) {
    return host + "-driver-" + TOKEN;
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
    for (String id : vmIds) {
      for (String h : HOSTS) {
        bed.exec(h, "virsh", "destroy", "one-" + id);
        bed.exec(h, "rm", "-rf", DS + "/" + id);
      }
    }
  }

  private static int hostsKnown() {
    try {
      HttpResponse<String> r = call("GET", "/api/v1/hosts");
      return r.statusCode() == 200 ? json.readTree(r.body()).get("hosts").size() : 0;
    } catch (Exception e) {
      return 0;
    }
  }

  private static HttpResponse<String> call(String method, String path) throws Exception {
    return http.send(
        HttpRequest.newBuilder(URI.create(control.url() + path))
            .timeout(Duration.ofSeconds(30))
            .header("Authorization", "Bearer " + TOKEN)
            .method(method, HttpRequest.BodyPublishers.noBody())
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** Deploys VM {@code id} on {@code host} as OpenNebula does; waits until its host reports it. */
  private String deploy(String host, String id, String... options) throws Exception {
    vmIds.add(id);
    List<String> args = new ArrayList<>(List.of(host, id));
    args.addAll(List.of(options));
    String uuid = bed.oneOk("vm", args.toArray(String[]::new)).strip();
    await()
        .atMost(Duration.ofSeconds(30))
        .pollInterval(Duration.ofMillis(500))
        .until(() -> call("GET", "/api/v1/vms/" + uuid).body().contains("\"" + host + "\""));
    return uuid;
  }

  private ProcessRunner.Output migrate(String id, String src, String dst, String... env) {
    return bed.one(List.of(env), "migrate", id, src, dst);
  }

  private String vm(String id) {
    return "one-" + id;
  }

  /** Nothing of {@code vm} on any host but {@code host}, and no persistent definition anywhere. */
  private void runsOnlyAndTransientlyOn(String vm, String host) {
    checks.runsOnlyOn(vm, host, HOSTS);
    for (String h : HOSTS) {
      String persistent = bed.virsh(h, "list", "--all", "--persistent", "--name");
      assertFalse(persistent.contains(vm), vm + " has a persistent definition on " + h);
    }
  }

  private List<String[]> disks(String id, String... files) {
    List<String[]> d = new ArrayList<>();
    for (String f : files) {
      d.add(new String[] {DS + "/" + id + "/" + f, "qcow2"});
    }
    return d;
  }

  /**
   * The seed scenario as OpenNebula runs it: a VM with a context CD, a non-persistent and a
   * persistent image and two system snapshots taken by OpenNebula's snapshot_create, live-migrated
   * through the front-end and the driver (exit 0); the destination holds the whole VM directory
   * (links, snap-N.xml, deployment file), the source none; OpenNebula's snapshot_revert keeps the
   * guest running; shut down and redeployed from deployment.0 on the new host, every write is
   * there.
   */
  @Test
  void theSeedScenarioThroughOpenNebulasOwnCalls() throws Exception {
    String id = "42";
    String vm = vm(id);
    String uuid = deploy("host1", id, "--persistent", "64", "--snapshots", "2");

    ProcessRunner.Output out = migrate(id, "host1", "host2");
    String log = out.result().stderrTail();
    assertEquals(0, out.result().exitCode(), log);
    assertTrue(log.contains("completed: " + uuid + " runs on host2"), log);
    assertTrue(log.lines().allMatch(l -> l.startsWith("INFO: ") || l.isBlank()), log);
    runsOnlyAndTransientlyOn(vm, "host2");
    String dir = DS + "/" + id;
    assertFalse(bed.exec("host1", "test", "-e", dir).result().accepted(), "postmigrate");
    assertEquals("disk.0.snap/0", bed.execOk("host2", "readlink", dir + "/disk.0").strip());
    assertEquals("disk.1.snap/0", bed.execOk("host2", "readlink", dir + "/disk.1").strip());
    for (String f : List.of("deployment.0", "vm.xml", "ds.xml", "snap-0.xml", "snap-1.xml")) {
      assertTrue(bed.exec("host2", "test", "-s", dir + "/" + f).result().accepted(), f);
    }
    assertEquals(
        bed.execOk("host2", "sha256sum", dir + "/disk.2").split(" ")[0].length(), 64, "context CD");
    assertEquals(List.of("snap-0", "snap-1"), checks.libvirtSnapshots("host2", vm));

    ProcessRunner.Output revert = bed.one(List.of(), "revert", "host2", id, "0");
    assertEquals(0, revert.result().exitCode(), revert.result().describe());
    assertEquals("running", bed.virsh("host2", "domstate", uuid));

    checks.noWriteLostThroughARedeploy(
        "host2",
        vm,
        disks(id, "disk.0.snap/0", "disk.1.snap/0"),
        () -> bed.oneOk("deploy", "host2", id));
    assertEquals(List.of("snap-0", "snap-1"), checks.libvirtSnapshots("host2", vm));
    runsOnlyAndTransientlyOn(vm, "host2");
  }

  /**
   * A VM without a context CD whose disk is a TM disk-snapshot chain over a base image that another
   * VM uses too: the chain arrives whole, the base is placed on the destination once, the other VM
   * and the base on the source stay as they were, and a redeploy on the new host boots it.
   */
  @Test
  void aDiskSnapshotChainOverASharedBaseWithoutAContextCd() throws Exception {
    String base = "5ab1e0c0ffee";
    String id = "43";
    deploy("host1", id, "--no-context", "--image-base", base);
    deploy("host1", "44", "--no-context", "--image-base", base);
    bed.oneOk("disk-snapshot", "host1", id, "0", "0");
    String baseFile = "/var/lib/one//datastores/1/" + base;
    String baseSum = bed.execOk("host1", "sha256sum", baseFile).split(" ")[0];

    ProcessRunner.Output out = migrate(id, "host1", "host3");
    assertEquals(0, out.result().exitCode(), out.result().stderrTail());
    runsOnlyAndTransientlyOn(vm(id), "host3");
    String dir = DS + "/" + id;
    assertEquals("disk.0.snap/1", bed.execOk("host3", "readlink", dir + "/disk.0").strip());
    String chain =
        bed.execOk("host3", "qemu-img", "info", "-U", "--backing-chain", dir + "/disk.0.snap/1");
    assertTrue(chain.contains(baseFile), chain);
    assertEquals(baseSum, bed.execOk("host3", "sha256sum", baseFile).split(" ")[0]);
    assertEquals(baseSum, bed.execOk("host1", "sha256sum", baseFile).split(" ")[0]);
    assertEquals("running", bed.virsh("host1", "domstate", vm("44")));

    checks.noWriteLostThroughARedeploy(
        "host3", vm(id), disks(id, "disk.0.snap/1"), () -> bed.oneOk("deploy", "host3", id));
  }

  /**
   * oned kills the action ({@code onevm terminate --hard}, {@code recover --delete} or a driver
   * timeout): the script gets a signal and the front-end's ssh session goes. The driver cancels,
   * the VM keeps running on the source alone. Then {@code onevm recover --retry} runs the same
   * history record again: a new attempt, which completes (exit 0, the VM on the destination).
   */
  @Test
  void aKilledActionCancelsAndARetryOfTheSameRecordMigrates() throws Exception {
    String id = "45";
    deploy("host1", id, "--prefill", "512");
    List<String> argv =
        List.of(
            bed.repo().resolve("testbed/testbed.sh").toString(),
            "one-migrate",
            id,
            "host1",
            "host2");
    ProcessBuilder pb = new ProcessBuilder(argv).redirectErrorStream(true);
    pb.environment().put("FERRY_TB", bed.stateDir().toString());
    pb.redirectOutput(bed.stateDir().resolve("one-migrate-45.log").toFile());
    Process frontEnd = pb.start();
    await()
        .atMost(Duration.ofSeconds(60))
        .pollInterval(Duration.ofMillis(200))
        .until(() -> "bulk-copy".equals(jobOf(vm(id)).path("progress").path("phase").asText()));
    List<Long> driver = bed.pidsInHost("host1", "kvm-ferry/migrate");
    assertFalse(driver.isEmpty(), "the driver runs on host1");
    for (long pid : driver) {
      // the script itself, not its subshells (they share its command line)
      boolean subshell =
          ProcessHandle.of(pid)
              .flatMap(ProcessHandle::parent)
              .map(p -> driver.contains(p.pid()))
              .orElse(false);
      if (!subshell) {
        bed.execOk("host1", "kill", "-TERM", Long.toString(pid));
      }
    }
    frontEnd.descendants().forEach(ProcessHandle::destroy);
    frontEnd.destroy();
    JsonNode job =
        await()
            .atMost(Duration.ofMinutes(3))
            .pollInterval(Duration.ofSeconds(1))
            .until(() -> jobOf(vm(id)), j -> !j.path("state").asText().matches("queued|running"));
    assertEquals("cancelled", job.path("state").asText(), job.toString());
    assertEquals("host1", job.path("result").path("runningOn").asText(), job.toString());
    runsOnlyAndTransientlyOn(vm(id), "host1");

    ProcessRunner.Output retry = migrate(id, "host1", "host2", "FERRY_TB_ONE_SEQ=1");
    String log = retry.result().stderrTail();
    assertEquals(0, retry.result().exitCode(), log);
    assertTrue(log.contains("trying again"), log);
    assertTrue(log.contains("runs on host2"), log);
    runsOnlyAndTransientlyOn(vm(id), "host2");
    checks.noWriteLostThroughARedeploy(
        "host2", vm(id), disks(id, "disk.0.snap/0"), () -> bed.oneOk("deploy", "host2", id));
  }

  /** A VM on a shared system datastore is OpenNebula's own business: migrate.orig gets it. */
  @Test
  void aSharedDatastoreGoesToOpenNebulasOwnScript() throws Exception {
    String id = "46";
    deploy("host1", id, "--no-context", "--shared-ds");
    ProcessRunner.Output out = migrate(id, "host1", "host2");
    String log = out.result().stderrTail();
    assertTrue(log.contains("the system datastore is shared: handing over"), log);
    assertTrue(log.contains("stand-in kvm/migrate"), log);
    assertEquals(json.createObjectNode(), jobOf(vm(id)), "Ferry kept out of it");
    // the stand-in's plain live migration cannot work without shared storage: its exit code
    // reaches oned, and the VM is where that code says
    assertEquals(1, out.result().exitCode(), log);
    runsOnlyAndTransientlyOn(vm(id), "host1");
  }

  /** The last Ferry job of {@code vm} (libvirt's name), or an empty object. */
  private JsonNode jobOf(String vm) throws Exception {
    JsonNode list = json.readTree(call("GET", "/api/v1/migrations").body());
    JsonNode found = json.createObjectNode();
    for (JsonNode j : list.path("jobs")) {
      if (j.path("request").path("vm").asText().equals(vm)) {
        found = j;
      }
    }
    return found;
  }
}
