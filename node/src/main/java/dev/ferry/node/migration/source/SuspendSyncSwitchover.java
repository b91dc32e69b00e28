package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.DiskSyncActor;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.migration.source.SourceMessage.DiskStopped;
import dev.ferry.node.migration.source.SourceMessage.FaultTestHoldOver;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMigration.Cancel;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.MigrationPhase;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The suspend-sync switchover: with the VM paused on the destination, every disk is made to match
 * the source's final file in place (delta or rsync), then the destination verifies, redefines the
 * snapshot metadata and resumes. A failed sync or verification is retried, then the paused VM is
 * migrated back.
 */
final class SuspendSyncSwitchover extends SourceFlow {

  SuspendSyncSwitchover(SourceMigration migration) {
    super(migration);
  }

  Behavior<Command> switchedOver(String why) {
    timers.cancel("poll-job");
    run.switchoverStarted = true;
    migration.record(new JournalEntry.SwitchedOver(why));
    run.switchedOverAt = System.currentTimeMillis();
    Duration hold = services.settings().migration().holdBeforeFinalSync();
    return hold.isZero() ? finalSync(1) : heldForAFaultTest(hold);
  }

  /** A fault test's point to strike at: the VM paused on the destination, nothing synced yet. */
  private Behavior<Command> heldForAFaultTest(Duration hold) {
    migration.enter(
        MigrationPhase.FINAL_SYNC,
        "final sync held " + hold.toSeconds() + " s for a fault test",
        hold.plus(services.settings().migration().timeouts().finalSync()));
    timers.startSingleTimer(new FaultTestHoldOver(), hold);
    return migration.withCommon(migration.state().on(FaultTestHoldOver.class, m -> finalSync(1)));
  }

  /** Makes every destination file match the source's final file, in place, while paused. */
  Behavior<Command> finalSync(int attempt) {
    migration.enter(
        MigrationPhase.FINAL_SYNC,
        "final sync" + (attempt > 1 ? " (attempt " + attempt + ")" : ""),
        services.settings().migration().timeouts().finalSync());
    run.bitmapsLeft.clear();
    Set<String> pending = new HashSet<>(run.disks.keySet());
    run.disks.values().forEach(d -> d.tell(new DiskSyncActor.FinalSync(attempt > 1)));
    return migration.withCommon(
        migration
            .state()
            .on(
                DiskSyncActor.FinalSyncDone.class,
                f -> {
                  run.finalMethod.put(f.target(), f.method());
                  run.finalBytes.put(f.target(), f.bytes());
                  f.bitmapLeft()
                      .ifPresent(
                          b ->
                              run.bitmapsLeft.add(
                                  new DestinationProtocol.DiskBitmap(run.pathOf(f.target()), b)));
                  pending.remove(f.target());
                  if (!pending.isEmpty()) {
                    return Behaviors.same();
                  }
                  migration.record(new JournalEntry.FinalSynced(run.finalMethod.toString()));
                  run.finalSyncedAt = System.currentTimeMillis();
                  run.target.tell(
                      new DestinationProtocol.FinalSynced(
                          List.copyOf(run.bitmapsLeft), targetReplies));
                  return verifying(attempt);
                })
            .on(
                DiskSyncActor.Failed.class,
                f -> {
                  run.note(
                      "final sync attempt "
                          + attempt
                          + " of "
                          + f.target()
                          + " failed: "
                          + f.reason());
                  return afterFailedSync(
                      attempt, "final sync of " + f.target() + " failed: " + f.reason());
                })
            .on(
                DiskStopped.class,
                m -> run.disks.containsKey(m.target()),
                m ->
                    migration.undo.migratingBack(
                        "the final sync of " + m.target() + " stopped unexpectedly"))
            .on(Cancel.class, migration::refuseCancel)
            .on(PhaseTimeout.class, m -> afterFailedSync(attempt, "the final sync timed out")));
  }

  Behavior<Command> afterFailedSync(int attempt, String why) {
    if (attempt < services.settings().migration().finalSyncAttempts()) {
      return finalSync(attempt + 1);
    }
    return migration.undo.migratingBack(why);
  }

  /** The target verifies, redefines snapshot metadata, resumes and checks the open inodes. */
  Behavior<Command> verifying(int attempt) {
    migration.enter(
        MigrationPhase.VERIFYING,
        "verifying on " + run.destination,
        services.settings().migration().timeouts().verify());
    return migration.withCommon(
        migration
            .state()
            .on(
                DestinationProtocol.Resumed.class,
                r -> {
                  run.resumedAt = r.resumedAtMillis();
                  run.verification = r.verification();
                  return migration.ack.acknowledging();
                })
            .on(
                DestinationProtocol.VerificationFailed.class,
                f -> {
                  run.verification = f.verification();
                  run.note("verification after attempt " + attempt + " failed: " + f.reason());
                  return afterFailedSync(attempt, "verification failed: " + f.reason());
                })
            .on(
                DestinationProtocol.Failed.class,
                // the target only fails after the resume if the VM already runs there
                failure ->
                    migration.failWithWhereabouts(
                        "the destination failed after the switchover: " + failure.reason()))
            .on(Cancel.class, migration::refuseCancel)
            .on(
                PhaseTimeout.class,
                m ->
                    migration.failWithWhereabouts(
                        "no answer from " + run.destination + " while verifying")));
  }
}
