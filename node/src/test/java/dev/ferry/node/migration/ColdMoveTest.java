package dev.ferry.node.migration;

import static dev.ferry.node.process.ScriptedProcessRunner.argvContains;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;

/**
 * The cold move: ACPI shutdown, copy, boot on the destination; never forced off, booted again on
 * the source when the destination cannot.
 */
class ColdMoveTest extends EngineFixture {

  /**
   * Cold strategy: the guest powers off (ACPI), its files are copied and verified, the destination
   * defines it, redefines the snapshots and boots it; only then does the source's definition go.
   * The source never drops its snapshot metadata, so any earlier failure leaves it intact.
   */
  @Test
  void aColdMoveBootsTheGuestOnTheDestinationWithItsSnapshots() {
    Outcome o = run("m-cold", cold());
    MigrationResult r = o.result();
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    assertTrue(r.verification().passed(), r.verification().details().toString());
    assertEquals(
        List.of(
            MigrationPhase.PREFLIGHT,
            MigrationPhase.PREPARING_DESTINATION,
            MigrationPhase.SHUTTING_DOWN,
            MigrationPhase.BULK_COPY,
            MigrationPhase.VERIFYING_COPIES,
            MigrationPhase.STARTING),
        o.phases().subList(0, 6));
    assertTrue(r.message().contains("moved cold"), r.message());
    assertEquals(List.of("shutdown " + VM), srcHv.callsWith("shutdown"));
    assertTrue(srcHv.callsWith("migrate").isEmpty(), "no live migration");
    assertTrue(srcHv.callsWith("delete-metadata").isEmpty(), "the source kept its metadata");
    List<String> dstOrder =
        dstHv.calls.stream()
            .filter(c -> c.equals("define") || c.startsWith("redefine") || c.startsWith("start"))
            .toList();
    assertEquals(
        List.of("define", "redefine snap-0", "redefine snap-1", "start " + VM),
        dstOrder,
        "booted only after the snapshot metadata was redefined");
    assertEquals(dev.ferry.node.libvirt.DomainState.RUNNING, dstHv.domains.get(VM).state);
    assertEquals("snap-1", dstHv.domains.get(VM).current);
    assertTrue(
        dstImages.calls.stream().anyMatch(c -> c.startsWith("check ")),
        "qemu-img check ran on the copies before the boot");
    assertFalse(srcHv.domains.containsKey(VM), "the source's definition is gone");
    org.awaitility.Awaitility.await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(
            () ->
                assertFalse(
                    Files.exists(root(src).resolve("ds0/vm1")),
                    "the source's VM directory was removed"));
  }

  @Test
  void aColdMoveTheDestinationCannotBootStartsTheGuestAgainOnTheSource() {
    dstHv.failNextStart =
        new dev.ferry.node.libvirt.HypervisorException(
            "VIR_ERR_INTERNAL_ERROR", "process exited while connecting to monitor", null);
    MigrationResult r = run("m-cold-back", cold()).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(
        r.message().contains("process exited") && r.message().contains(VM + " started again"),
        r.message());
    assertEquals(dev.ferry.node.libvirt.DomainState.RUNNING, srcHv.domains.get(VM).state);
    assertEquals(Set.of("snap-0", "snap-1"), srcHv.snapshotNames(VM));
    assertFalse(dstHv.domains.containsKey(VM), "the destination's definition was removed");
    assertFalse(Files.exists(root(dst).resolve("ds0/vm1")), "the destination's copy was removed");
    assertTrue(Files.exists(root(src).resolve("ds0/vm1/disk.0")), "the source's files stay");
  }

  /** A guest that ignores the ACPI button is never forced off: the move gives up, it runs on. */
  @Test
  void aGuestThatIgnoresThePowerButtonKeepsRunningAndTheColdMoveRollsBack() {
    srcHv.ignoreShutdown = true;
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(src)
        .tell(new AgentProtocol.StartMigration("m-cold-deaf", VM, dst, cold(), events.getRef()));
    boolean shuttingDown = false;
    for (int i = 0; i < 200 && !shuttingDown; i++) {
      MigrationEvent e = pollOne(events);
      if (e == null) {
        manualTime.timePasses(Duration.ofMillis(200));
      } else if (e instanceof MigrationEvent.Progress p) {
        shuttingDown = p.progress().phase() == MigrationPhase.SHUTTING_DOWN;
      }
    }
    assertTrue(shuttingDown, "reached the shutdown");
    manualTime.timePasses(Duration.ofMinutes(3));
    MigrationResult r = await(events).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(
        r.message().contains("did not power off") && r.message().contains("not forced"),
        r.message());
    assertTrue(srcHv.callsWith("destroy").isEmpty(), "never forced off");
    assertEquals(dev.ferry.node.libvirt.DomainState.RUNNING, srcHv.domains.get(VM).state);
    assertFalse(Files.exists(root(dst).resolve("ds0/vm1")), "the destination's copy was removed");
  }

  /**
   * A guest started on the source during the cold copy (OpenNebula, an HA hook, a person) is not
   * booted on the destination too: the move rolls back and the guest keeps running here (issue 11).
   */
  @Test
  void aGuestStartedOnTheSourceDuringTheCopyIsNotBootedThere() {
    srcRunner.onFirst(
        argvContains("rsync"),
        ScriptedProcessRunner.Reply.ok(),
        argv -> {
          arrive();
          srcHv.domains.get(VM).state = DomainState.RUNNING; // someone started it meanwhile
        });
    MigrationResult r = run("m-cold-started", cold()).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(
        r.message().contains("was started on " + src + " during the cold move"), r.message());
    assertTrue(dstHv.callsWith("start").isEmpty(), "never booted there");
    assertEquals(DomainState.RUNNING, srcHv.domains.get(VM).state);
  }

  /**
   * A guest started on the source while the destination booted it: the source's definition is not
   * undefined and its files stay; it is paused, and the result names the destination, where the
   * verified copy runs.
   */
  @Test
  void aGuestStartedOnTheSourceWhileItBootsThereIsPausedAndKept() {
    dstHv.afterStart = vm -> srcHv.domains.get(VM).state = DomainState.RUNNING;
    MigrationResult r = run("m-cold-twice", cold()).result();
    assertEquals(MigrationOutcome.FAILED, r.outcome(), r.message());
    assertEquals(dst, r.runningOn());
    assertTrue(
        r.message().contains("it was started on " + src + " while it booted there"), r.message());
    assertEquals(DomainState.PAUSED, srcHv.domains.get(VM).state);
    assertTrue(srcHv.callsWith("undefine").isEmpty(), "the running guest was not undefined");
    assertTrue(Files.exists(root(src).resolve("ds0/vm1/disk.0")), "nothing removed here");
  }
}
