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
import dev.ferry.protocol.FinalSyncMethod;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationProgress;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Faults during a migration, on the real test bed. Each must end with the VM running on exactly one
 * host, its snapshots intact there, its data intact, and nothing left that blocks a retry.
 */
class EngineFaultsIT {
  /** This flow is what these tests are about, whatever the default strategy is. */
  private static final MigrationOptions SUSPEND_SYNC =
      MigrationOptions.defaults().withStrategy(MigrationStrategy.SUSPEND_SYNC);

  private static final List<String> HOSTS = List.of("host1", "host2", "host3");
  private static final long SLOW = 4L << 20; // 4 MiB/s: the bulk copy takes long enough to hit
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
          .pollInterval(Duration.ofMillis(100))
          .until(() -> latest.get() != null && p.test(latest.get()));
    }
  }

  private static Watched start(String vm, MigrationOptions options) {
    AtomicReference<MigrationProgress> latest = new AtomicReference<>();
    String id = "fault-" + UUID.randomUUID().toString().substring(0, 8);
    ClusterClient.Run run =
        cluster
            .client()
            .migrate(
                id,
                vm,
                "host1",
                "host2",
                options,
                e -> {
                  if (e instanceof MigrationEvent.Progress p) {
                    latest.set(p.progress());
                  }
                });
    return new Watched(run, latest);
  }

  private void assertIntactOnSource(MigrationResult r) {
    checks.runsOnlyOn(vm, "host1", HOSTS);
    assertEquals(
        List.of("snap-0"),
        checks.libvirtSnapshots("host1", vm),
        "snapshot metadata restored: " + r.message());
    assertEquals(List.of("snap-0"), checks.snapshotsInImage("host1", GuestChecks.disk(vm, 0)));
    assertFalse(
        Files.exists(bed.datastoreFile("host2", Testbed.DATASTORE + "/" + vm)),
        "the destination's leftovers were removed");
    assertEquals(0, bed.console("host1", vm).verifyFailures());
  }

  private MigrationResult retry() {
    String id = "retry-" + UUID.randomUUID().toString().substring(0, 8);
    return cluster
        .client()
        .migrate(id, vm, "host1", "host2", SUSPEND_SYNC, e -> {})
        .await(Duration.ofMinutes(6));
  }

  @Test
  void bulkCopyKilledMidwayRollsBackAndARetrySucceeds() {
    vm = "f-kill";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "48", "--snapshots", "1");
    Watched w = start(vm, SUSPEND_SYNC.withBandwidth(SLOW));
    w.awaitProgress(
        p ->
            p.phase() == MigrationPhase.BULK_COPY
                && p.disks().stream().anyMatch(d -> d.bytesDone() > (2 << 20)));
    // the bulk copy is rsync --sparse by default: kill the sender of this disk
    List<Long> copies = bed.pidsInHost("host1", "rsync", "--sparse", vm + "/disk.0");
    assertFalse(copies.isEmpty(), "the bulk copy's rsync runs on host1");
    copies.forEach(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly));

    MigrationResult r = w.run().await(Duration.ofMinutes(3));
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertEquals("host1", r.runningOn());
    assertIntactOnSource(r);

    MigrationResult again = retry();
    assertEquals(MigrationOutcome.COMPLETED, again.outcome(), again.message());
    checks.runsOnlyOn(vm, "host2", HOSTS);
    assertEquals(List.of("snap-0"), checks.snapshotsInImage("host2", GuestChecks.disk(vm, 0)));
    checks.noWriteLost(
        "host2", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
  }

  @Test
  void cancelDuringBulkCopyRollsBack() {
    vm = "f-cancel";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "48", "--snapshots", "1");
    Watched w = start(vm, SUSPEND_SYNC.withBandwidth(SLOW));
    w.awaitProgress(
        p ->
            p.phase() == MigrationPhase.BULK_COPY
                && p.disks().stream().anyMatch(d -> d.bytesDone() > (2 << 20)));
    AgentProtocol.CancelReply reply =
        cluster.client().cancel("host1", w.run().migrationId, "operator changed their mind");
    assertTrue(reply.accepted(), reply.message());

    MigrationResult r = w.run().await(Duration.ofMinutes(3));
    assertEquals(MigrationOutcome.CANCELLED, r.outcome(), r.message());
    assertIntactOnSource(r);
    AgentProtocol.CancelReply late = cluster.client().cancel("host1", w.run().migrationId, "again");
    assertFalse(late.accepted(), "a finished migration cannot be cancelled: " + late.message());
  }

  @Test
  void destinationDatastoreFullRollsBack() {
    vm = "f-full";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "48", "--snapshots", "1");
    long needed =
        Long.parseLong(
            bed.execOk("host1", "du", "-s", "-B1", Testbed.DATASTORE + "/" + vm).split("\\s+")[0]);
    // room for preflight's estimate, but filled up by someone else while the copy runs
    long size = needed + needed / 20 + (64L << 20) + (8L << 20);
    bed.execOk("host2", "mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", Testbed.DATASTORE);
    try {
      Watched w = start(vm, SUSPEND_SYNC.withBandwidth(SLOW));
      w.awaitProgress(
          p ->
              p.phase() == MigrationPhase.BULK_COPY
                  && p.disks().stream().anyMatch(d -> d.bytesDone() > (2 << 20)));
      bed.exec(
          "host2",
          "dd",
          "if=/dev/zero",
          "of=" + Testbed.DATASTORE + "/filler",
          "bs=1M",
          "count=100000");
      MigrationResult r = w.run().await(Duration.ofMinutes(3));
      assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
      assertTrue(r.message().contains("No space left"), r.message());
      assertIntactOnSource(r);
      assertTrue(
          bed.exec("host2", "test", "-e", Testbed.DATASTORE + "/filler").result().accepted(),
          "a file that is not ours is left alone");

      // and a datastore that is too small from the start is refused before anything is copied
      bed.execOk("host2", "rm", "-f", Testbed.DATASTORE + "/filler");
      bed.execOk(
          "host2",
          "dd",
          "if=/dev/zero",
          "of=" + Testbed.DATASTORE + "/filler",
          "bs=1M",
          "count=" + ((size >> 20) - 16));
      MigrationResult refused = retry();
      assertEquals(MigrationOutcome.ROLLED_BACK, refused.outcome());
      assertTrue(refused.message().contains("not enough space"), refused.message());
      checks.runsOnlyOn(vm, "host1", HOSTS);
    } finally {
      bed.exec("host2", "umount", Testbed.DATASTORE);
    }
  }

  /**
   * ssh to the destination is refused after the switchover: the rsync final sync fails twice, so
   * the paused VM's memory goes back to the source, whose files are authoritative, and it resumes
   * there with every snapshot and every write.
   */
  @Test
  void sshRefusedDuringFinalSyncMigratesBack() {
    vm = "f-ssh";
    bed.mkvm("host1", vm, "--mem", "128", "--prefill", "16", "--snapshots", "1");
    Watched w = start(vm, SUSPEND_SYNC.withFinalSync(FinalSyncMethod.RSYNC));
    // once the incoming QEMU exists on host2, libvirt's own ssh tunnel is up: stopping sshd now
    // refuses only new connections, i.e. the final sync's
    w.awaitProgress(p -> p.phase() == MigrationPhase.MEMORY_MIGRATION);
    await()
        .atMost(Duration.ofMinutes(2))
        .pollInterval(Duration.ofMillis(50))
        .until(() -> !bed.pidsInHost("host2", "qemu-system", "guest=" + vm).isEmpty());
    bed.stopSshd("host2");
    try {
      MigrationResult r = w.run().await(Duration.ofMinutes(5));
      assertEquals(MigrationOutcome.MIGRATED_BACK, r.outcome(), r.message());
      assertEquals("host1", r.runningOn());
      checks.runsOnlyOn(vm, "host1", HOSTS);
      assertEquals(List.of("snap-0"), checks.libvirtSnapshots("host1", vm));
      assertEquals(List.of("snap-0"), checks.snapshotsInImage("host1", GuestChecks.disk(vm, 0)));
      bed.console("host1", vm).awaitProgress(Duration.ofSeconds(60));
      checks.noWriteLost(
          "host1", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
      checks.revertWorks("host1", vm, "snap-0");
    } finally {
      bed.startSshd("host2");
    }
  }
}
