package dev.ferry.node.it;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.libvirt.BlockJob;
import dev.ferry.node.libvirt.DiskDefinition;
import dev.ferry.node.libvirt.DomainDefinition;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.DomainSummary;
import dev.ferry.node.libvirt.HostInfo;
import dev.ferry.node.libvirt.Hypervisor;
import dev.ferry.node.libvirt.Hypervisor.BlockCommit;
import dev.ferry.node.libvirt.Hypervisor.SnapshotCreate;
import dev.ferry.node.libvirt.HypervisorException;
import dev.ferry.node.libvirt.JobStats;
import dev.ferry.node.libvirt.LibvirtHypervisor;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.libvirt.MigrationFlag;
import dev.ferry.node.libvirt.MigrationRequest;
import dev.ferry.node.libvirt.SnapshotDefinition;
import dev.ferry.node.testbed.GuestConsole;
import dev.ferry.node.testbed.Testbed;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/** Every {@link Hypervisor} method against real libvirtd 9.0 / QEMU 7.2 on the test bed. */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class HypervisorIT {
  private static final String VM = "hv-vm";
  private static Testbed bed;
  private static LibvirtHypervisor host1;
  private static LibvirtHypervisor host2;

  @BeforeAll
  static void up() {
    bed = Testbed.shared(3);
    bed.mkvm("host1", VM, "--mem", "128", "--prefill", "16", "--snapshots", "2");
    host1 = new LibvirtHypervisor(bed.libvirtUri("host1"));
    host2 = new LibvirtHypervisor(bed.libvirtUri("host2"));
  }

  @AfterAll
  static void down() {
    bed.removeVm("host1", VM);
    bed.removeVm("host2", VM);
    host1.close();
    host2.close();
  }

  @Test
  @Order(1)
  void listsLooksUpAndParsesDomains() {
    assertTrue(host1.listDomains().stream().anyMatch(d -> d.name().equals(VM)));
    DomainSummary s = host1.lookup(VM).orElseThrow();
    assertEquals(DomainState.RUNNING, s.state());
    assertTrue(s.persistent());
    assertEquals(128 * 1024, s.memoryKiB());
    assertEquals(Optional.empty(), host2.lookup(VM));

    DomainDefinition live = host1.definition(VM, false);
    DiskDefinition vda = live.disks().get(0);
    assertEquals("vda", vda.target());
    assertEquals(Optional.of(Testbed.DATASTORE + "/" + VM + "/disk.0"), vda.sourceFile());
    assertEquals(Optional.of("qcow2"), vda.driverType());
    assertEquals(1, host1.definition(VM, true).disks().size());

    HostInfo info = host1.hostInfo();
    assertEquals("host1", info.hostname());
    assertTrue(info.cpus() > 0 && info.memoryKiB() > 0 && info.freeMemoryBytes() > 0);
    assertTrue(info.libvirtVersion() >= 9_000_000);
  }

  @Test
  @Order(2)
  void lifecycleEventsSuspendAndResume() throws Exception {
    List<LifecycleEvent> events = new CopyOnWriteArrayList<>();
    AutoCloseable subscription = host1.subscribe(events::add);
    try {
      host1.suspend(VM);
      assertEquals(DomainState.PAUSED, host1.lookup(VM).orElseThrow().state());
      host1.resume(VM);
      await()
          .atMost(Duration.ofSeconds(10))
          .until(
              () ->
                  events.stream().anyMatch(e -> e.is(LifecycleEvent.Type.SUSPENDED, "PAUSED"))
                      && events.stream()
                          .anyMatch(e -> e.is(LifecycleEvent.Type.RESUMED, "UNPAUSED")));
    } finally {
      subscription.close();
    }
    assertTrue(events.stream().allMatch(e -> e.domain().equals(VM)));
  }

  @Test
  @Order(3)
  void snapshotMetadataCanBeDroppedAndRedefined() {
    List<SnapshotDefinition> snaps = host1.snapshots(VM);
    assertEquals(
        List.of("snap-0", "snap-1"), snaps.stream().map(SnapshotDefinition::name).toList());
    assertEquals(Optional.of("snap-1"), host1.currentSnapshot(VM));

    host1.deleteSnapshotMetadata(VM, "snap-1");
    host1.deleteSnapshotMetadata(VM, "snap-0");
    assertEquals(List.of(), host1.snapshots(VM));
    assertEquals(Optional.empty(), host1.currentSnapshot(VM));

    host1.redefineSnapshot(VM, snaps.get(0).xml(), false);
    host1.redefineSnapshot(VM, snaps.get(1).xml(), true);
    assertEquals(
        List.of("snap-0", "snap-1"),
        host1.snapshots(VM).stream().map(SnapshotDefinition::name).toList());
    assertEquals(Optional.of("snap-1"), host1.currentSnapshot(VM));
  }

  @Test
  @Order(4)
  void qmpPassthroughAddsAndRemovesADirtyBitmap() {
    String blocks = host1.qemuMonitorCommand(VM, "{\"execute\":\"query-block\"}");
    assertTrue(blocks.contains("\"node-name\":\"libvirt-"), blocks);
    String node = blocks.replaceAll("(?s).*\"node-name\":\"(libvirt-\\d+-format)\".*", "$1");
    String add =
        host1.qemuMonitorCommand(
            VM,
            "{\"execute\":\"block-dirty-bitmap-add\",\"arguments\":{\"node\":\""
                + node
                + "\",\"name\":\"hv-it\",\"persistent\":true}}");
    assertTrue(add.contains("\"return\":{}"), add);
    String remove =
        host1.qemuMonitorCommand(
            VM,
            "{\"execute\":\"block-dirty-bitmap-remove\",\"arguments\":{\"node\":\""
                + node
                + "\",\"name\":\"hv-it\"}}");
    assertTrue(remove.contains("\"return\":{}"), remove);
    HypervisorException bad =
        assertThrows(
            HypervisorException.class,
            () -> host1.qemuMonitorCommand(VM, "{\"execute\":\"no-such-command\"}"));
    assertTrue(bad.getMessage().contains("no-such-command"), bad.getMessage());
  }

  @Test
  @Order(5)
  void externalOverlayThenActiveCommitWithPivot() {
    String dir = Testbed.DATASTORE + "/" + VM;
    String snapshotXml =
        "<domainsnapshot><name>ovl</name><disks><disk name='vda' snapshot='external'>"
            + "<source file='"
            + dir
            + "/disk.0.ovl'/></disk></disks></domainsnapshot>";
    host1.createSnapshot(
        VM,
        snapshotXml,
        SnapshotCreate.DISK_ONLY,
        SnapshotCreate.NO_METADATA,
        SnapshotCreate.ATOMIC);
    DiskDefinition vda = host1.definition(VM, false).disks().get(0);
    assertEquals(Optional.of(dir + "/disk.0.ovl"), vda.sourceFile());
    assertEquals(List.of(dir + "/disk.0"), vda.backingFiles());

    host1.blockCommit(VM, "vda", dir + "/disk.0", 0, BlockCommit.ACTIVE, BlockCommit.SHALLOW);
    await()
        .atMost(Duration.ofSeconds(60))
        .until(() -> host1.blockJob(VM, "vda").map(BlockJob::caughtUp).orElse(false));
    host1.blockJobAbort(VM, "vda", true);
    await().atMost(Duration.ofSeconds(30)).until(() -> host1.blockJob(VM, "vda").isEmpty());
    assertEquals(
        Optional.of(dir + "/disk.0"), host1.definition(VM, false).disks().get(0).sourceFile());
    bed.execOk("host1", "rm", "-f", dir + "/disk.0.ovl");
  }

  @Test
  @Order(6)
  void migrationAbortedMidwayLeavesTheGuestRunning() throws Exception {
    prepareDestinationDisk();
    host1.deleteSnapshotMetadata(VM, "snap-1");
    host1.deleteSnapshotMetadata(VM, "snap-0");
    MigrationRequest slow =
        new MigrationRequest(
            "qemu+ssh://host2/system",
            EnumSet.of(
                MigrationFlag.LIVE,
                MigrationFlag.PEER2PEER,
                MigrationFlag.PERSIST_DEST,
                MigrationFlag.UNDEFINE_SOURCE,
                MigrationFlag.NON_SHARED_DISK),
            OptionalLong.of(1),
            List.of(),
            Optional.empty());
    CompletableFuture<Void> migration = CompletableFuture.runAsync(() -> host1.migrate(VM, slow));
    // abort well inside the disk copy (2 MiB at 1 MiB/s): aborted during libvirt's set-up or
    // its first block, the P2P connection just drops ("End of file while reading data", seen
    // in CI with the first bytes moved) instead of libvirt cancelling the job
    await()
        .atMost(Duration.ofSeconds(60))
        .until(
            () -> host1.jobStats(VM).active() && host1.jobStats(VM).diskProcessed() > (2L << 20));
    host1.abortJob(VM);
    Exception e = assertThrows(Exception.class, () -> migration.get(60, TimeUnit.SECONDS));
    assertTrue(e.getCause() instanceof HypervisorException, e.toString());
    // libvirt reports our abort either as the cancelled job or, when the destination's side of
    // the P2P connection closes first, as the connection's end; both were seen in CI for the same
    // abort, with the job running and disk data moving when it was asked
    String why = e.getCause().getMessage();
    assertTrue(
        why.contains("cancel") || why.contains("End of file while reading data"),
        "the migration ended for another reason than the abort: " + why);
    await()
        .atMost(Duration.ofSeconds(30))
        .until(() -> host1.lookup(VM).orElseThrow().state() == DomainState.RUNNING);
    assertFalse(host1.jobStats(VM).active());
  }

  @Test
  @Order(7)
  void migratesWithTypedParametersAndReportsJobStats() throws Exception {
    prepareDestinationDisk();
    MigrationRequest request =
        new MigrationRequest(
            "qemu+ssh://host2/system",
            EnumSet.of(
                MigrationFlag.LIVE,
                MigrationFlag.PEER2PEER,
                MigrationFlag.PERSIST_DEST,
                MigrationFlag.UNDEFINE_SOURCE,
                MigrationFlag.NON_SHARED_DISK),
            // 20 MiB/s: a few seconds of migration, so the statistics are sampled mid-copy (at
            // 200 MiB/s it once ended before a sample showed the totals)
            OptionalLong.of(20),
            List.of(),
            Optional.empty());
    List<JobStats> seen = new CopyOnWriteArrayList<>();
    CompletableFuture<Void> migration =
        CompletableFuture.runAsync(() -> host1.migrate(VM, request));
    boolean downtimeSet = false;
    while (!migration.isDone()) {
      try {
        JobStats s = host1.jobStats(VM);
        if (s.active()) {
          seen.add(s);
          if (!downtimeSet) {
            host1.setMaxDowntime(VM, 500);
            downtimeSet = true;
          }
        }
      } catch (HypervisorException gone) {
        break; // the source domain is gone once the migration completed
      }
      TimeUnit.MILLISECONDS.sleep(100);
    }
    migration.get(120, TimeUnit.SECONDS);
    assertFalse(seen.isEmpty(), "job statistics were reported while migrating");
    assertTrue(
        seen.stream().anyMatch(s -> s.memoryTotal() > 0 && s.diskTotal() > 0), seen.toString());
    assertTrue(downtimeSet);
    assertEquals(Optional.empty(), host1.lookup(VM));
    assertEquals(DomainState.RUNNING, host2.lookup(VM).orElseThrow().state());
  }

  @Test
  @Order(8)
  void stopStartDefineUndefineAndRevert() {
    String xml = host2.definition(VM, true).xml();
    host2.destroy(VM);
    assertEquals(DomainState.SHUTOFF, host2.lookup(VM).orElseThrow().state());
    host2.undefine(VM);
    assertEquals(Optional.empty(), host2.lookup(VM));
    GuestConsole console = bed.console("host2", VM);
    int boots = console.readyCount();
    host2.define(xml);
    host2.start(VM);
    assertEquals(DomainState.RUNNING, host2.lookup(VM).orElseThrow().state());
    // the guest must be past its boot, listening for the power button, when the snapshot is taken
    await().atMost(Duration.ofSeconds(60)).until(() -> console.readyCount() > boots);
    console.awaitProgress(Duration.ofSeconds(60));
    host2.createSnapshot(VM, "<domainsnapshot><name>s</name></domainsnapshot>");
    host2.revertToSnapshot(VM, "s");
    assertEquals(DomainState.RUNNING, host2.lookup(VM).orElseThrow().state());
    console.awaitProgress(Duration.ofSeconds(60));
    host2.shutdown(VM); // ACPI: the guest powers itself off
    await()
        .atMost(Duration.ofSeconds(60))
        .until(() -> host2.lookup(VM).orElseThrow().state() == DomainState.SHUTOFF);
    console.awaitShutdownRecord(-1, Duration.ofSeconds(10)); // the guest saw the power button
  }

  private static void prepareDestinationDisk() {
    bed.exec("host2", "rm", "-rf", Testbed.DATASTORE + "/" + VM);
    bed.execOk("host2", "mkdir", "-p", Testbed.DATASTORE + "/" + VM);
    bed.execOk(
        "host2",
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        Testbed.DATASTORE + "/" + VM + "/disk.0",
        "512M");
  }
}
