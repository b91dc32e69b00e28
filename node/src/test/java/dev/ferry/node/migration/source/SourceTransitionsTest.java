package dev.ferry.node.migration.source;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.protocol.MigrationPhase;
import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The outgoing migration's state table: what it allows is what the design promises. */
class SourceTransitionsTest {

  @Test
  void aResultIsAlwaysPossibleAndEndsEverything() {
    for (MigrationPhase p : MigrationPhase.values()) {
      // resuming is the destination's to report; the source never enters it
      if (p != MigrationPhase.FINISHED && p != MigrationPhase.RESUMING) {
        assertTrue(SourceTransitions.allowed(p, MigrationPhase.FINISHED), p.name());
      }
      assertFalse(SourceTransitions.allowed(MigrationPhase.FINISHED, p), p.name());
    }
  }

  /**
   * Rolling back is possible until the VM's memory is on its way and in the cold move's boot, and
   * never after the switchover: then only finishing or migrating back is safe.
   */
  @Test
  void rollbackOnlyBeforeTheSwitchover() {
    Set<MigrationPhase> mayRollBack =
        EnumSet.of(
            MigrationPhase.PREPARING_DESTINATION,
            MigrationPhase.SHUTTING_DOWN,
            MigrationPhase.DIRTY_TRACKING,
            MigrationPhase.CREATING_OVERLAYS,
            MigrationPhase.BULK_COPY,
            MigrationPhase.VERIFYING_COPIES,
            MigrationPhase.DROPPING_METADATA,
            MigrationPhase.MEMORY_MIGRATION,
            MigrationPhase.STARTING);
    for (MigrationPhase p : MigrationPhase.values()) {
      assertTrue(
          SourceTransitions.allowed(p, MigrationPhase.ROLLING_BACK) == mayRollBack.contains(p),
          p + " -> rolling-back");
    }
  }

  @Test
  void movesOutsideTheTableAreRefused() {
    assertThrows(
        IllegalStateException.class,
        () -> SourceTransitions.check(MigrationPhase.PREFLIGHT, MigrationPhase.FINAL_SYNC));
    assertThrows(
        IllegalStateException.class,
        () -> SourceTransitions.check(MigrationPhase.SOURCE_CLEANUP, MigrationPhase.VERIFYING));
    assertThrows(
        IllegalStateException.class,
        () -> SourceTransitions.check(MigrationPhase.MERGING, MigrationPhase.MIGRATING_BACK));
    SourceTransitions.check(MigrationPhase.FINAL_SYNC, MigrationPhase.FINAL_SYNC);
  }
}
