package dev.ferry.node.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationProgress;
import dev.ferry.protocol.MigrationResult;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;

/**
 * The overlay strategy: overlays on the source, the merge on the destination before the
 * acknowledgement, the merge back on a rollback.
 */
class OverlaySwitchoverTest extends EngineFixture {

  @Test
  void overlayStrategyMergesOnTheDestinationBeforeAcknowledging() {
    Outcome o = run("m-ovl", overlay());
    MigrationResult r = o.result();
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    assertTrue(r.verification().passed(), r.verification().details().toString());
    assertTrue(
        o.phases()
            .containsAll(
                List.of(
                    MigrationPhase.CREATING_OVERLAYS,
                    MigrationPhase.VERIFYING_COPIES,
                    MigrationPhase.MEMORY_MIGRATION,
                    MigrationPhase.MERGING)),
        o.phases().toString());
    assertTrue(
        o.phases().indexOf(MigrationPhase.MERGING)
            > o.phases().indexOf(MigrationPhase.MEMORY_MIGRATION));
    String migrate = srcHv.callsWith("migrate").get(0);
    assertTrue(
        migrate.contains("NON_SHARED_INC")
            && !migrate.contains("PAUSED")
            && !migrate.contains("UNSAFE"),
        migrate);
    assertTrue(
        dstImages.calls.stream()
            .anyMatch(c -> c.startsWith("create ") && c.contains(".ferry-overlay-m-ovl-vda")),
        "the destination overlay was created: " + dstImages.calls);
    assertEquals(
        List.of("commit vda", "pivot vda"),
        dstHv.calls.stream().filter(c -> c.startsWith("commit") || c.startsWith("pivot")).toList());
    assertEquals(
        java.util.Optional.of(DISK),
        dstHv.domains.get(VM).definition.disks().get(0).sourceFile(),
        "the domain runs on its original file again");
    assertEquals(Set.of("snap-0", "snap-1"), dstHv.snapshotNames(VM));
    assertTrue(r.message().contains("overlays merged"), r.message());
  }

  @Test
  void overlayRollbackMergesTheOverlaysBackOnTheSource() {
    srcHv.failNextMigration =
        new dev.ferry.node.libvirt.HypervisorException(
            "VIR_ERR_OPERATION_FAILED", "destination refused", null);
    MigrationResult r = run("m-ovl-back", overlay()).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(r.message().contains("overlays merged back"), r.message());
    assertEquals(
        List.of("commit vda", "pivot vda"),
        srcHv.calls.stream().filter(c -> c.startsWith("commit") || c.startsWith("pivot")).toList());
    assertEquals(
        java.util.Optional.of(DISK), srcHv.domains.get(VM).definition.disks().get(0).sourceFile());
    assertEquals(Set.of("snap-0", "snap-1"), srcHv.snapshotNames(VM));
    assertFalse(Files.exists(root(dst).resolve("ds0/vm1")));
  }

  @Test
  void aFerryBitmapLeftInACopyFailsTheVerificationAndRollsBack() {
    // a bitmap of an earlier migration that never reached its verification (issue 11)
    dstImages.bitmaps.put(java.nio.file.Path.of(DISK), List.of("ferry-m-earlier"));
    try {
      MigrationResult r = run("m-ovl-stale", overlay()).result();
      assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
      assertTrue(
          r.message().contains("Ferry dirty bitmaps left in the image: [ferry-m-earlier]"),
          r.message());
      assertTrue(srcHv.callsWith("migrate").isEmpty(), "no memory migration on failed copies");
    } finally {
      dstImages.bitmaps.clear();
    }
  }

  /**
   * While the destination merges, the guest runs there: progress must not report it paused (issue
   * 11: 1.7 to 26 s "paused" against results of 50 to 387 ms).
   */
  @Test
  void progressDuringTheMergeDoesNotReportTheRunningGuestAsPaused() {
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(src)
        .tell(
            new AgentProtocol.StartMigration("m-ovl-paused", VM, dst, overlay(), events.getRef()));
    List<MigrationProgress> merging = new java.util.ArrayList<>();
    MigrationResult r = null;
    for (int i = 0; i < 400 && r == null; i++) {
      MigrationEvent e = pollOne(events);
      if (e == null) {
        manualTime.timePasses(Duration.ofMillis(200));
      } else if (e instanceof MigrationEvent.Progress p
          && p.progress().phase() == MigrationPhase.MERGING) {
        merging.add(p.progress());
      } else if (e instanceof MigrationEvent.Finished f) {
        r = f.result();
      }
    }
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    assertFalse(merging.isEmpty(), "progress was published during the merge");
    assertTrue(
        merging.stream().allMatch(p -> p.pausedMillis() == 0),
        "paused while merging: " + merging.stream().map(MigrationProgress::pausedMillis).toList());
  }
}
