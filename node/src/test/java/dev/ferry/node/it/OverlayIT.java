package dev.ferry.node.it;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.client.ClusterClient;
import dev.ferry.node.testbed.Cluster;
import dev.ferry.node.testbed.GuestChecks;
import dev.ferry.node.testbed.Testbed;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationProgress;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The overlay strategy end to end on real libvirt/QEMU hosts (docs/overlay.md): the engine issue's
 * scenarios with {@code strategy=overlay}, the hazards the probe found, a rollback and a crash of
 * the destination's agent in the middle of the merge.
 */
class OverlayIT {
  private static final List<String> HOSTS = List.of("host1", "host2", "host3");
  private static final MigrationOptions OVERLAY =
      MigrationOptions.defaults().withStrategy(MigrationStrategy.OVERLAY);
  private static Testbed bed;
  private static Cluster cluster;
  private static GuestChecks checks;
  private String vm;

  @BeforeAll
  static void up() {
    bed = Testbed.shared(3);
    cluster = Cluster.start(bed, "", "host1", "host2", "host3");
    checks = new GuestChecks(bed);
  }

  @AfterAll
  static void down() {
    cluster.close();
  }

  @AfterEach
  void removeVm() {
    for (String h : HOSTS) {
      bed.removeVm(h, vm);
    }
  }

  /** A migration whose latest progress is visible to the test while it runs. */
  private record Watched(ClusterClient.Run run, AtomicReference<MigrationProgress> latest) {
    void awaitProgress(Predicate<MigrationProgress> p) {
      await()
          .atMost(Duration.ofMinutes(3))
          .pollInterval(Duration.ofMillis(50))
          .until(() -> latest.get() != null && p.test(latest.get()));
    }

    MigrationResult result() {
      return run.await(Duration.ofMinutes(6));
    }
  }

  private static Watched start(String vm, String from, String to, MigrationOptions options) {
    AtomicReference<MigrationProgress> latest = new AtomicReference<>();
    String id = "ov-" + UUID.randomUUID().toString().substring(0, 8);
    ClusterClient.Run run =
        cluster
            .client()
            .migrate(
                id,
                vm,
                from,
                to,
                options,
                e -> {
                  if (e instanceof MigrationEvent.Progress p) {
                    latest.set(p.progress());
                  }
                });
    return new Watched(run, latest);
  }

  private static MigrationResult migrate(String vm, String from, String to) {
    return start(vm, from, to, OVERLAY).result();
  }

  /** Files of ours that must never outlive a migration: the temporary overlays. */
  private static List<String> overlaysLeft(String host, String vm) {
    Path dir = bed.datastoreFile(host, Testbed.DATASTORE + "/" + vm);
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> files = Files.list(dir)) {
      return files
          .map(p -> p.getFileName().toString())
          .filter(n -> n.startsWith(".ferry-overlay-"))
          .toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The file libvirt's live definition names for a disk, from {@code virsh domblklist}. */
  private static String domblk(String host, String vm, String target) {
    for (String line : bed.virsh(host, "domblklist", vm).split("\n")) {
      String[] f = line.trim().split("\\s+");
      if (f.length == 2 && f[0].equals(target)) {
        return f[1];
      }
    }
    throw new AssertionError(target + " not in domblklist of " + vm + " on " + host);
  }

  private static void assertOnOriginalFiles(String host, String vm, int disks) {
    for (int i = 0; i < disks; i++) {
      assertEquals(
          GuestChecks.disk(vm, i),
          domblk(host, vm, "vd" + (char) ('a' + i)),
          "the domain runs on its original file again");
    }
    assertEquals(List.of(), overlaysLeft(host, vm), "no overlay left on " + host);
  }

  /**
   * The seed scenario (OpenNebula 6368) with the overlay strategy: the internal snapshot survives
   * two migrations in a row in the image and in libvirt, and reverting to it works each time.
   */
  @Test
  void seedScenarioSnapshotSurvivesTwoMigrations() {
    vm = "ov-seed";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "32", "--snapshots", "1");
    String disk = GuestChecks.disk(vm, 0);

    MigrationResult first = migrate(vm, "host1", "host2");
    assertEquals(MigrationOutcome.COMPLETED, first.outcome(), first.message());
    assertEquals(MigrationStrategy.OVERLAY, first.strategy());
    assertEquals("host2", first.runningOn());
    assertTrue(first.verification().passed(), first.verification().details().toString());
    assertEquals(List.of("snap-0"), first.snapshots());
    assertEquals("overlay-commit", first.disks().get(0).finalSyncMethod(), first.message());
    assertTrue(first.pausedMillis() > 0, "the paused window was measured");
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertOnOriginalFiles("host2", vm, 1);
    assertEquals(List.of("snap-0"), checks.snapshotsInImage("host2", disk));
    assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host2", vm));
    assertEquals("snap-0", bed.virsh("host2", "snapshot-current", "--name", vm));
    assertFalse(
        Files.exists(bed.datastoreFile("host1", disk)),
        "the source's files were removed after the acknowledgement");
    checks.revertWorks("host2", vm, "snap-0");

    MigrationResult second = migrate(vm, "host2", "host3");
    assertEquals(MigrationOutcome.COMPLETED, second.outcome(), second.message());
    checks.runsOnlyOn(vm, "host3", HOSTS);
    assertOnOriginalFiles("host3", vm, 1);
    assertEquals(List.of("snap-0"), checks.snapshotsInImage("host3", disk));
    checks.revertWorks("host3", vm, "snap-0");
    checks.noWriteLost("host3", vm, List.<String[]>of(new String[] {disk, "qcow2"}));
  }

  /**
   * No write lost: the guest writes every 100 ms during the whole migration, so its overlay holds
   * the newest records when it is mirrored and then committed; a cold boot finds them all.
   */
  @Test
  void noWriteLost() {
    vm = "ov-nowl";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "32", "--tick", "0.1");
    long before = bed.console("host1", vm).lastProgress();
    MigrationResult r = migrate(vm, "host1", "host2");
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertOnOriginalFiles("host2", vm, 1);
    long after = bed.console("host2", vm).awaitProgress(Duration.ofSeconds(60));
    assertTrue(after > before, "the guest kept writing across the migration");
    checks.noWriteLost(
        "host2", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
  }

  /**
   * Several disks, every format handled the same way: vda qcow2 with two internal snapshots, vdb
   * qcow2 and vdc raw (a qcow2 overlay committed back into the raw file), and a read-only ISO that
   * gets no overlay at all.
   */
  @Test
  void severalDisksIncludingRawAllArrive() {
    vm = "ov-multi";
    bed.mkvm(
        "host1",
        vm,
        "--mem",
        "128",
        "--prefill",
        "16",
        "--snapshots",
        "2",
        "--cdrom",
        "--extra",
        "qcow2:320",
        "--extra",
        "raw:320");
    String iso = Testbed.DATASTORE + "/" + vm + "/disk.9";
    String isoSum = bed.execOk("host1", "sha256sum", iso).split("\\s+")[0];

    MigrationResult r = migrate(vm, "host1", "host2");
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    assertEquals(3, r.disks().size(), "three writable disks moved: " + r.disks());
    r.disks().forEach(d -> assertEquals("overlay-commit", d.finalSyncMethod(), d.target()));
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertOnOriginalFiles("host2", vm, 3);
    assertTrue(
        bed.execOk("host2", "qemu-img", "info", "-U", GuestChecks.disk(vm, 2))
            .contains("file format: raw"),
        "the raw disk is still raw");
    assertEquals(
        List.of("snap-0", "snap-1"), checks.snapshotsInImage("host2", GuestChecks.disk(vm, 0)));
    assertEquals(List.of("snap-0", "snap-1"), checks.libvirtSnapshots("host2", vm));
    assertEquals("snap-1", bed.virsh("host2", "snapshot-current", "--name", vm));
    assertEquals(
        isoSum,
        bed.execOk("host2", "sha256sum", iso).split("\\s+")[0],
        "the read-only ISO arrived unchanged");
    checks.noWriteLost(
        "host2",
        vm,
        List.of(
            new String[] {GuestChecks.disk(vm, 0), "qcow2"},
            new String[] {GuestChecks.disk(vm, 1), "qcow2"},
            new String[] {GuestChecks.disk(vm, 2), "raw"}));
    checks.revertWorks("host2", vm, "snap-1");
    checks.revertWorks("host2", vm, "snap-0");
  }

  /**
   * OpenNebula's qcow2 layout: disk.0 has its own backing file (disk.0.snap/0). The commit must be
   * shallow (a deep one would write into the shared base and silently break the snapshots), so the
   * base is byte-identical after the move and disk.0 still names it.
   */
  @Test
  void backingChainIsKeptByAShallowCommit() {
    vm = "ov-chain";
    bed.mkvm("host1", vm, "--mem", "128", "--backing", "--snapshots", "1", "--tick", "0.2");
    String base = Testbed.DATASTORE + "/" + vm + "/disk.0.snap/0";
    String baseSum = bed.execOk("host1", "sha256sum", base).split("\\s+")[0];

    MigrationResult r = migrate(vm, "host1", "host2");
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    assertEquals("overlay-commit-shallow", r.disks().get(0).finalSyncMethod(), r.message());
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertOnOriginalFiles("host2", vm, 1);
    assertEquals(
        baseSum,
        bed.execOk("host2", "sha256sum", base).split("\\s+")[0],
        "the base under disk.0 was not written into");
    String info = bed.execOk("host2", "qemu-img", "info", "-U", GuestChecks.disk(vm, 0));
    // the test bed names the backing file relative to disk.0, as OpenNebula does
    assertTrue(info.contains("(actual path: " + base + ")"), info);
    assertEquals(List.of("snap-0"), checks.snapshotsInImage("host2", GuestChecks.disk(vm, 0)));
    checks.noWriteLost(
        "host2", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
    checks.revertWorks("host2", vm, "snap-0");
  }

  /**
   * A base image in a directory other VMs share (an image datastore). The clean-up used to take
   * that whole directory for the VM's own: copied, then deleted on the source with every other VM's
   * base in it. Now the base is placed on the destination (missing there), stays on the source, the
   * neighbour's file is untouched, only the VM's own directory goes; on the way back the base is
   * already there and identical, and the destination's copy stays too.
   */
  @Test
  void aSharedBaseImageIsPlacedButNeverRemoved() {
    vm = "ov-shared";
    String shared = Testbed.DATASTORE + "/shared";
    String base = shared + "/" + vm + "-base.qcow2";
    String neighbour = shared + "/another-vm-base.qcow2";
    try {
      bed.mkvm(
          "host1",
          vm,
          "--mem",
          "128",
          "--shared-base",
          "shared",
          "--snapshots",
          "1",
          "--tick",
          "0.2");
      bed.execOk("host1", "qemu-img", "create", "-q", "-f", "qcow2", neighbour, "16M");
      String baseSum = sha256("host1", base);

      MigrationResult r = migrate(vm, "host1", "host2");
      assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
      checks.runsOnlyOn(vm, "host2", HOSTS);
      assertEquals(baseSum, sha256("host2", base), "the base was placed on the destination");
      assertEquals(baseSum, sha256("host1", base), "the shared base stays on the source");
      assertEquals(0, bed.exec("host1", "test", "-f", neighbour).result().exitCode());
      // the result is published first; the source's files go right after
      await()
          .atMost(Duration.ofSeconds(30))
          .untilAsserted(
              () ->
                  assertEquals(
                      "",
                      bed.exec("host1", "find", Testbed.DATASTORE + "/" + vm).stdout(),
                      "the VM's own directory was removed from the source"));

      MigrationResult back = migrate(vm, "host2", "host1");
      assertEquals(MigrationOutcome.COMPLETED, back.outcome(), back.message());
      checks.runsOnlyOn(vm, "host1", HOSTS);
      assertEquals(baseSum, sha256("host2", base), "nothing removed the shared base there");
      assertEquals(0, bed.exec("host1", "test", "-f", neighbour).result().exitCode());
      checks.noWriteLost(
          "host1", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
      checks.revertWorks("host1", vm, "snap-0");
    } finally {
      for (String h : HOSTS) {
        bed.exec(h, "rm", "-rf", shared);
      }
    }
  }

  /**
   * A Ferry dirty bitmap an earlier migration left in the running VM's image (its destination agent
   * died before the verification that removes it). The overlay flow used to carry it along and
   * report success; the next snapshot-revert then failed and QEMU stopped the guest. Now the
   * preflight removes it, and no Ferry bitmap reaches the destination.
   */
  @Test
  void aLeftoverFerryBitmapIsRemovedAtPreflightAndRevertWorksAfterTheMove() {
    vm = "ov-bitmap";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "8", "--snapshots", "1", "--tick", "0.2");
    checks.addBitmap("host1", vm, "ferry-m-leftover");

    MigrationResult r = migrate(vm, "host1", "host2");

    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    assertTrue(
        r.message().contains("ferry-m-leftover of an earlier migration removed"), r.message());
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertEquals(List.of(), checks.bitmapsInImage("host2", GuestChecks.disk(vm, 0)));
    String blocks = bed.virsh("host2", "qemu-monitor-command", vm, "{\"execute\":\"query-block\"}");
    assertFalse(blocks.contains("ferry-m-leftover"), blocks);
    checks.revertWorks("host2", vm, "snap-0");
  }

  private static String sha256(String host, String file) {
    return bed.execOk(host, "sha256sum", file).split("\\s+")[0];
  }

  /**
   * The destination's libvirt refuses the incoming domain (a stale definition with the same name
   * appeared there after the preflight) once the disks are already frozen under their overlays and
   * copied: the overlays are merged back on the source, its snapshot metadata restored, the
   * destination's copies removed, and a retry succeeds.
   */
  @Test
  void destinationRefusesBeforeTheSwitchoverRollsBack() throws IOException {
    vm = "ov-refuse";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "48", "--snapshots", "1", "--tick", "0.2");
    Watched w = start(vm, "host1", "host2", OVERLAY.withBandwidth(4L << 20));
    w.awaitProgress(
        p ->
            p.phase() == MigrationPhase.BULK_COPY
                && p.disks().stream().anyMatch(d -> d.bytesDone() > (2 << 20)));
    assertEquals(
        Testbed.DATASTORE + "/" + vm + "/.ferry-overlay-" + w.run().migrationId + "-vda.qcow2",
        domblk("host1", vm, "vda"),
        "while the frozen file is copied, the VM writes to its overlay");
    Path stale = bed.hostDir("host2").resolve("ferry/stale-" + vm + ".xml");
    Files.writeString(
        stale,
        "<domain type='qemu'><name>"
            + vm
            + "</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>"
            + "</domain>");
    bed.virsh("host2", "define", "/var/lib/ferry/" + stale.getFileName());
    MigrationResult r;
    try {
      r = w.result();
    } finally {
      bed.exec("host2", "virsh", "undefine", vm);
      Files.deleteIfExists(stale);
    }
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertEquals("host1", r.runningOn());
    assertTrue(r.message().contains("overlays merged back"), r.message());
    assertEquals(
        List.of("snap-0"),
        checks.libvirtSnapshots("host1", vm),
        "snapshot metadata restored: " + r.message());
    assertEquals(List.of("snap-0"), checks.snapshotsInImage("host1", GuestChecks.disk(vm, 0)));
    assertOnOriginalFiles("host1", vm, 1);
    assertFalse(
        Files.exists(bed.datastoreFile("host2", Testbed.DATASTORE + "/" + vm)),
        "the destination's copies were removed");
    assertEquals(0, bed.console("host1", vm).verifyFailures());

    MigrationResult again = migrate(vm, "host1", "host2");
    assertEquals(MigrationOutcome.COMPLETED, again.outcome(), again.message());
    checks.runsWholeOnlyOn(vm, "host2", HOSTS, "snap-0");
  }

  /**
   * The destination's agent is killed (SIGKILL) while the overlay memory migration runs and the
   * guest still runs here. libvirt's job used to go on inside libvirtd while the job ended failed
   * with no host named and a paused domain left on host2. Now the job is aborted, the overlays
   * merged back, the VM runs on host1 alone with its snapshot and every write, and a retry after
   * the agent's restart succeeds.
   */
  @Test
  void destinationAgentKilledDuringTheMemoryMigrationRollsBack() {
    vm = "ov-memkill";
    // the guest dirties memory (5 MiB/s) faster than the cap: the memory migration runs until
    // the kill; more dirtying made the uncapped retry starve the agents' heartbeats on 2 cores
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "8", "--snapshots", "1");
    try {
      Watched w = start(vm, "host1", "host2", OVERLAY.withBandwidth(2L << 20));
      w.awaitProgress(
          p ->
              p.phase() == MigrationPhase.MEMORY_MIGRATION
                  && p.message().startsWith("migrating memory"));
      cluster.agent("host2").kill9();

      MigrationResult r = w.result();
      assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
      assertEquals("host1", r.runningOn());
      assertTrue(r.message().contains("overlays merged back"), r.message());
      checks.runsOnlyOn(vm, "host1", HOSTS);
      assertOnOriginalFiles("host1", vm, 1);
      assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host1", vm));

      cluster.restart("host2", "");
      MigrationResult again = migrate(vm, "host1", "host2");
      assertEquals(MigrationOutcome.COMPLETED, again.outcome(), again.message());
      checks.runsWholeOnlyOn(vm, "host2", HOSTS, "snap-0");
    } finally {
      cluster.restart("host2", "");
    }
  }

  /**
   * The destination's agent is killed (SIGKILL) after the switchover, while the merge runs. The VM
   * keeps running there on its consistent two-file chain; the restarted agent finishes the merge
   * from its journal, the source's agent learns it and acknowledges, and the VM ends on its
   * original single-file disk with its snapshot and every write. Snapshots are refused while it is
   * on the chain.
   */
  @Test
  void destinationAgentCrashDuringMergeIsFinishedAfterRestart() {
    vm = "ov-crash";
    // a slow commit on host2, so that the merge is still running when the agent is killed: the
    // guest writes a 64 KiB record every 0.2 s, about half of this bandwidth
    String slowCommit = "ferry.node.migration.overlay.commit-bandwidth = 524288";
    cluster.restart("host2", slowCommit);
    try {
      bed.mkvm("host1", vm, "--mem", "128", "--prefill", "32", "--snapshots", "1");
      Watched w = start(vm, "host1", "host2", OVERLAY);
      w.awaitProgress(p -> p.phase() == MigrationPhase.MERGING);
      AgentProtocol.SnapshotReply refused =
          cluster.client().createSnapshot("host2", vm, "during-merge");
      assertFalse(refused.created(), "no snapshot on the temporary chain: " + refused.message());
      String overlay =
          Testbed.DATASTORE + "/" + vm + "/.ferry-overlay-" + w.run().migrationId + "-vda.qcow2";
      assertEquals(overlay, domblk("host2", vm, "vda"), "the merge had not finished yet");
      cluster.agent("host2").kill9();
      checks.runsOnlyOn(vm, "host2", HOSTS);

      cluster.restart("host2", slowCommit);
      MigrationResult r = w.result();
      assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
      assertTrue(r.message().contains("restarted during the merge"), r.message());
      assertTrue(r.verification().passed(), r.verification().details().toString());
      checks.runsOnlyOn(vm, "host2", HOSTS);
      assertOnOriginalFiles("host2", vm, 1);
      assertEquals(List.of("snap-0"), checks.snapshotsInImage("host2", GuestChecks.disk(vm, 0)));
      assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host2", vm));
      AgentProtocol.SnapshotReply after = cluster.client().createSnapshot("host2", vm, "after");
      assertTrue(after.created(), "snapshots are allowed again: " + after.message());
      checks.noWriteLost(
          "host2", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
      checks.revertWorks("host2", vm, "snap-0");
    } finally {
      cluster.restart("host2", "");
    }
  }
}
