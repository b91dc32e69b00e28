package dev.ferry.node.migration;

import static dev.ferry.node.process.ScriptedProcessRunner.argvContains;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.fakes.FakeHypervisor;
import dev.ferry.node.fakes.FakeImageTool;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.node.process.ScriptedProcessRunner.Reply;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;

/**
 * Rolling back before the switchover: failures, cancels, timeouts, a journal that cannot be
 * written.
 */
class UndoTest extends EngineFixture {

  @Test
  void aFailedMemoryMigrationRollsBack() {
    srcHv.failNextMigration =
        new dev.ferry.node.libvirt.HypervisorException(
            "VIR_ERR_OPERATION_FAILED", "migration of disk failed: broken pipe", null);
    MigrationResult r = run("m-mem", rsyncFinal()).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(
        r.message().contains("broken pipe") && r.message().contains("snapshot metadata restored"),
        r.message());
    assertEquals(Set.of("snap-0", "snap-1"), srcHv.snapshotNames(VM));
    assertEquals("snap-1", srcHv.domains.get(VM).current);
    assertFalse(
        Files.exists(root(dst).resolve("ds0/vm1")), "the destination's leftovers were removed");
  }

  @Test
  void cancelDuringTheBulkCopyKillsItAndRollsBack() {
    srcRunner = new ScriptedProcessRunner();
    ScriptedProcessRunner hanging =
        srcRunner
            .on(argvContains("find"), Reply.ok())
            .on(argvContains("rsync"), Reply.hanging())
            .on(argvContains("tar"), Reply.hanging())
            .on(argvContains("ssh"), Reply.hanging());
    String host = "srch" + hostIds.incrementAndGet();
    srcHv = cloud.host(host);
    srcHv.addRunning(VM, 131072, List.of(DISK));
    srcHv.addSnapshot(VM, "snap-0", null);
    try {
      Files.createDirectories(root(host).resolve("ds0/vm1"));
      Files.writeString(root(host).resolve("ds0/vm1/disk.0"), "x");
      start(host, srcHv, new FakeImageTool(images), hanging);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(host)
        .tell(new AgentProtocol.StartMigration("m-cancel", VM, dst, rsyncFinal(), events.getRef()));
    awaitPhase(events, MigrationPhase.BULK_COPY, "");
    TestProbe<AgentProtocol.CancelReply> reply = testKit.createTestProbe();
    agent(host).tell(new AgentProtocol.CancelMigration("m-cancel", "test", reply.getRef()));
    assertTrue(reply.receiveMessage().accepted());
    MigrationResult r = await(events).result();
    assertEquals(MigrationOutcome.CANCELLED, r.outcome(), r.message());
    assertEquals(Set.of("snap-0"), srcHv.snapshotNames(VM));
    assertFalse(Files.exists(root(dst).resolve("ds0/vm1")));
  }

  @Test
  void aBulkCopyThatNeverEndsTimesOutAndRollsBack() throws Exception {
    String host = "srct" + hostIds.incrementAndGet();
    FakeHypervisor hv = cloud.host(host);
    hv.addRunning(VM, 131072, List.of(DISK));
    Files.createDirectories(root(host).resolve("ds0/vm1"));
    Files.writeString(root(host).resolve("ds0/vm1/disk.0"), "x");
    ScriptedProcessRunner hanging =
        new ScriptedProcessRunner()
            .on(argvContains("find"), Reply.ok())
            .on(argvContains("rsync"), Reply.hanging())
            .on(argvContains("tar"), Reply.hanging())
            .on(argvContains("ssh"), Reply.hanging());
    start(host, hv, new FakeImageTool(images), hanging);
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(host)
        .tell(
            new AgentProtocol.StartMigration("m-timeout", VM, dst, rsyncFinal(), events.getRef()));
    awaitPhase(events, MigrationPhase.BULK_COPY, "");
    // the copy may take copy-base 5 min + 3 min per started GiB = 8 min
    manualTime.timePasses(Duration.ofMinutes(7));
    assertTrue(
        events.receiveSeveralMessages(1, Duration.ofSeconds(1)).stream()
                .noneMatch(e -> e instanceof MigrationEvent.Finished)
            && pollOne(events) instanceof MigrationEvent.Progress,
        "still copying after 7 minutes");
    manualTime.timePasses(Duration.ofMinutes(2));
    MigrationResult r = await(events).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(r.message().contains("the bulk copy timed out"), r.message());
    assertTrue(hv.domains.containsKey(VM));
  }

  @Test
  void cancelDuringTheMemoryMigrationAbortsTheJobAndRollsBack() {
    srcHv.migrationGate = new CountDownLatch(1);
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(src)
        .tell(new AgentProtocol.StartMigration("m-abort", VM, dst, rsyncFinal(), events.getRef()));
    awaitPhase(events, MigrationPhase.MEMORY_MIGRATION, "migrating memory");
    TestProbe<AgentProtocol.CancelReply> reply = testKit.createTestProbe();
    agent(src).tell(new AgentProtocol.CancelMigration("m-abort", "test", reply.getRef()));
    assertTrue(reply.receiveMessage().accepted());
    MigrationResult r = await(events).result();
    assertEquals(MigrationOutcome.CANCELLED, r.outcome(), r.message());
    assertEquals(1, srcHv.aborts.get(), "the running memory migration was aborted");
    assertEquals(Set.of("snap-0", "snap-1"), srcHv.snapshotNames(VM));
  }

  /**
   * The destination's agent dies while the overlay memory migration runs, the guest still running
   * here: libvirt's job is aborted and the overlays merged back (issue 11: it used to end failed at
   * once, the job left running inside libvirtd).
   */
  @Test
  void theDestinationAgentDyingDuringTheOverlayMemoryMigrationAbortsAndRollsBack() {
    srcHv.migrationGate = new CountDownLatch(1);
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(src)
        .tell(new AgentProtocol.StartMigration("m-dst-dies", VM, dst, overlay(), events.getRef()));
    awaitPhase(events, MigrationPhase.MEMORY_MIGRATION, "migrating memory");
    testKit.stop(agents.get(1)); // the destination's agent, with its migration actor

    MigrationResult r = await(events).result();

    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertEquals(src, r.runningOn());
    assertEquals(1, srcHv.aborts.get(), "libvirt's migration job was aborted");
    assertTrue(r.message().contains("overlays merged back"), r.message());
    assertEquals(Set.of("snap-0", "snap-1"), srcHv.snapshotNames(VM));
  }

  /**
   * A step whose journal record cannot be written is not taken: with the disk full when the
   * snapshot metadata is about to be dropped, the migration rolls back with the metadata untouched
   * and says why, and the actor does not crash.
   */
  @Test
  void aJournalThatCannotBeWrittenRollsBackInsteadOfActing() {
    sourceJournalFails = e -> e instanceof JournalEntry.MetadataDropping;
    Outcome o = run("m-journal-full", rsyncFinal());
    MigrationResult r = o.result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertEquals(src, r.runningOn());
    assertTrue(r.message().contains("journal on " + src + " cannot be written"), r.message());
    assertEquals(List.of(), srcHv.callsWith("delete-metadata"));
    assertTrue(
        srcHv.listDomains().stream().anyMatch(d -> d.name().equals(VM) && d.state().active()));
  }
}
