package dev.ferry.node.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.testbed.Cluster;
import dev.ferry.node.testbed.GuestChecks;
import dev.ferry.node.testbed.Testbed;
import dev.ferry.protocol.BulkCopyMethod;
import dev.ferry.protocol.DiskResult;
import dev.ferry.protocol.FinalSyncMethod;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The suspend-sync engine end to end on real libvirt/QEMU hosts, one agent JVM per host. */
class SuspendSyncIT {
  /** This flow is what these tests are about, whatever the default strategy is. */
  private static final MigrationOptions SUSPEND_SYNC =
      MigrationOptions.defaults().withStrategy(MigrationStrategy.SUSPEND_SYNC);

  private static final List<String> HOSTS = List.of("host1", "host2", "host3");
  private static Testbed bed;
  private static Cluster cluster;
  private static GuestChecks checks;

  @BeforeAll
  static void up() {
    bed = Testbed.shared(3);
    cluster = Cluster.start(bed, "", "host1", "host2", "host3");
    checks = new GuestChecks(bed);
  }

  @AfterAll
  static void down() {
    cluster.close();
    for (String h : HOSTS) {
      bed.removeVm(h, "seed");
    }
  }

  private static MigrationResult migrate(
      String vm, String from, String to, MigrationOptions options) {
    String id = "it-" + UUID.randomUUID().toString().substring(0, 8);
    return cluster
        .client()
        .migrate(id, vm, from, to, options, e -> {})
        .await(Duration.ofMinutes(6));
  }

  /**
   * The seed scenario (OpenNebula 6368): a qcow2 disk with an internal snapshot taken while the
   * guest ran arrives with the snapshot in the image and in libvirt, and reverting to it works,
   * twice in a row.
   */
  @Test
  void seedScenarioSnapshotSurvivesTwoMigrations() {
    String vm = "seed";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "32", "--snapshots", "1");
    String disk = GuestChecks.disk(vm, 0);

    MigrationResult first = migrate(vm, "host1", "host2", SUSPEND_SYNC);
    assertEquals(MigrationOutcome.COMPLETED, first.outcome(), first.message());
    assertEquals("host2", first.runningOn());
    assertTrue(first.verification().passed(), first.verification().details().toString());
    assertEquals(List.of("snap-0"), first.snapshots());
    DiskResult d = first.disks().get(0);
    assertEquals(
        "bitmap-delta", d.finalSyncMethod(), "qcow2 v3 uses the delta: " + first.message());
    assertTrue(first.pausedMillis() > 0, "the paused window was measured");
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertEquals(List.of("snap-0"), checks.snapshotsInImage("host2", disk));
    assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host2", vm));
    assertEquals("snap-0", bed.virsh("host2", "snapshot-current", "--name", vm));
    assertFalse(
        Files.exists(bed.datastoreFile("host1", disk)),
        "the source's files were removed after the acknowledgement");

    checks.revertWorks("host2", vm, "snap-0");

    MigrationResult second = migrate(vm, "host2", "host3", SUSPEND_SYNC);
    assertEquals(MigrationOutcome.COMPLETED, second.outcome(), second.message());
    checks.runsOnlyOn(vm, "host3", HOSTS);
    assertEquals(List.of("snap-0"), checks.snapshotsInImage("host3", disk));
    checks.revertWorks("host3", vm, "snap-0");
    checks.noWriteLost("host3", vm, List.<String[]>of(new String[] {disk, "qcow2"}));
  }

  /**
   * kill -9 of the destination's agent after the switchover, the VM paused there before its final
   * sync (a fault-test hold keeps it there). It used to stay paused until a person acted; now the
   * source migrates it back through host2's libvirt and resumes it on its own files, the restarted
   * agent on host2 removes what the migration left there, and a retry succeeds.
   */
  @Test
  void destinationAgentKilledAfterTheSwitchoverIsTakenOver() {
    String vm = "takeover";
    cluster.restart("host1", "ferry.node.migration.fault-tests.hold-before-final-sync = 20s");
    try {
      bed.mkvm("host1", vm, "--mem", "128", "--prefill", "8", "--snapshots", "1");
      java.util.concurrent.atomic.AtomicReference<String> held =
          new java.util.concurrent.atomic.AtomicReference<>("");
      var run =
          cluster
              .client()
              .migrate(
                  "it-takeover",
                  vm,
                  "host1",
                  "host2",
                  SUSPEND_SYNC,
                  e -> {
                    if (e instanceof dev.ferry.protocol.MigrationEvent.Progress p
                        && p.progress().message().contains("held")) {
                      held.set(p.progress().message());
                    }
                  });
      org.awaitility.Awaitility.await()
          .atMost(Duration.ofMinutes(3))
          .until(() -> !held.get().isEmpty());
      assertEquals("paused", bed.virsh("host2", "domstate", vm), "paused on the destination");
      cluster.agent("host2").kill9();

      MigrationResult r = run.await(Duration.ofMinutes(6));
      assertEquals(MigrationOutcome.MIGRATED_BACK, r.outcome(), r.message());
      assertEquals("host1", r.runningOn());
      checks.runsOnlyOn(vm, "host1", HOSTS);
      assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host1", vm));
      assertEquals(List.of(), checks.bitmapsInImage("host1", GuestChecks.disk(vm, 0)));

      cluster.restart("host2", "");
      org.awaitility.Awaitility.await()
          .atMost(Duration.ofSeconds(60))
          .until(() -> !Files.exists(bed.datastoreFile("host2", GuestChecks.disk(vm, 0))));
      MigrationResult again = migrate(vm, "host1", "host2", SUSPEND_SYNC);
      assertEquals(MigrationOutcome.COMPLETED, again.outcome(), again.message());
      checks.runsWholeOnlyOn(vm, "host2", HOSTS, "snap-0");
    } finally {
      cluster.restart("host1", "");
      cluster.restart("host2", "");
      for (String h : HOSTS) {
        bed.removeVm(h, vm);
      }
    }
  }

  /**
   * kill -9 of the source's agent after the switchover, the VM paused on the destination before its
   * final sync. The restarted agent finds the migration in its journal past the switchover, takes
   * the VM back through host2's libvirt and resumes it on its own (authoritative) files with the
   * snapshot metadata restored; host2's agent is told to abort and removes what the migration left
   * there; a retry then succeeds.
   */
  @Test
  void sourceAgentKilledAfterTheSwitchoverTakesTheVmBack() {
    String vm = "srckill";
    cluster.restart("host1", "ferry.node.migration.fault-tests.hold-before-final-sync = 30s");
    try {
      bed.mkvm("host1", vm, "--mem", "128", "--prefill", "8", "--snapshots", "1");
      java.util.concurrent.atomic.AtomicReference<String> held =
          new java.util.concurrent.atomic.AtomicReference<>("");
      cluster
          .client()
          .migrate(
              "it-srckill",
              vm,
              "host1",
              "host2",
              SUSPEND_SYNC,
              e -> {
                if (e instanceof dev.ferry.protocol.MigrationEvent.Progress p
                    && p.progress().message().contains("held")) {
                  held.set(p.progress().message());
                }
              });
      org.awaitility.Awaitility.await()
          .atMost(Duration.ofMinutes(3))
          .until(() -> !held.get().isEmpty());
      assertEquals("paused", bed.virsh("host2", "domstate", vm), "paused on the destination");
      cluster.agent("host1").kill9();
      cluster.restart("host1", "");

      org.awaitility.Awaitility.await()
          .atMost(Duration.ofMinutes(3))
          .pollInterval(Duration.ofSeconds(1))
          .until(
              () ->
                  "running".equals(bed.exec("host1", "virsh", "domstate", vm).stdout().strip())
                      && !bed.exec("host2", "virsh", "dominfo", vm).result().accepted());
      checks.runsOnlyOn(vm, "host1", HOSTS);
      assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host1", vm));
      assertEquals(List.of(), checks.bitmapsInImage("host1", GuestChecks.disk(vm, 0)));
      org.awaitility.Awaitility.await()
          .atMost(Duration.ofSeconds(60))
          .until(() -> !Files.exists(bed.datastoreFile("host2", GuestChecks.disk(vm, 0))));

      MigrationResult again = migrate(vm, "host1", "host2", SUSPEND_SYNC);
      assertEquals(MigrationOutcome.COMPLETED, again.outcome(), again.message());
      checks.runsWholeOnlyOn(vm, "host2", HOSTS, "snap-0");
    } finally {
      cluster.restart("host1", "");
      for (String h : HOSTS) {
        bed.removeVm(h, vm);
      }
    }
  }

  /**
   * No write lost, with the rsync final sync: the guest writes during the whole migration; after a
   * clean shutdown on the destination its last record is the header in the file, and a cold boot
   * finds every checked record intact.
   */
  @Test
  void noWriteLostWithRsyncFinalSync() {
    String vm = "nowl";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "32", "--tick", "0.1");
    long before = bed.console("host1", vm).lastProgress();
    MigrationResult r =
        migrate(
            vm,
            "host1",
            "host2",
            SUSPEND_SYNC.withFinalSync(FinalSyncMethod.RSYNC).withBulkCopy(BulkCopyMethod.TAR));
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    assertEquals("tar", r.disks().get(0).bulkMethod(), "tar -S stays selectable");
    assertEquals("rsync-inplace", r.disks().get(0).finalSyncMethod());
    checks.runsOnlyOn(vm, "host2", HOSTS);
    long after = bed.console("host2", vm).awaitProgress(Duration.ofSeconds(60));
    assertTrue(after > before, "the guest kept writing across the migration");
    checks.noWriteLost(
        "host2", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
    bed.removeVm("host2", vm);
  }

  /**
   * Several disks: vda qcow2 with two internal snapshots, vdb qcow2 and vdc raw hot-plugged after
   * them, and a read-only ISO. Everything arrives, the guest's records on all three writable disks
   * are intact, and both snapshots revert.
   */
  @Test
  void severalDisksAllArriveAndSnapshotsRevert() {
    String vm = "multi";
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

    MigrationResult r = migrate(vm, "host1", "host2", SUSPEND_SYNC);
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    assertEquals(3, r.disks().size(), "three writable disks moved: " + r.disks());
    assertEquals("bitmap-delta", r.disks().get(0).finalSyncMethod());
    assertEquals("bitmap-delta", r.disks().get(1).finalSyncMethod());
    assertEquals("rsync-inplace", r.disks().get(2).finalSyncMethod(), "raw disks use rsync");
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertEquals(
        List.of("snap-0", "snap-1"), checks.snapshotsInImage("host2", GuestChecks.disk(vm, 0)));
    assertEquals(List.of(), checks.snapshotsInImage("host2", GuestChecks.disk(vm, 1)));
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
    // snapshots predate the hot-plugged disks: libvirt's revert restores their definitions
    checks.revertWorks("host2", vm, "snap-1");
    checks.revertWorks("host2", vm, "snap-0");
    bed.removeVm("host2", vm);
  }
}
