package dev.ferry.node.migration.source;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.migration.StateBuilder;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.node.migration.source.SourceMessage.AgentListing;
import dev.ferry.node.migration.source.SourceMessage.OverlaysCreated;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMessage.Queried;
import dev.ferry.node.migration.source.SourceMessage.RetryQuery;
import dev.ferry.node.migration.source.SourceMessage.TargetGone;
import dev.ferry.node.migration.source.SourceMigration.Cancel;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.Verification;
import java.util.List;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The overlay switchover: the writable disks are frozen under temporary overlays, the frozen files
 * are copied and checked, libvirt mirrors only the overlays during the memory migration and resumes
 * the VM, and the destination merges the overlays back into the copied files and proves the result
 * before anything is acknowledged.
 */
final class OverlaySwitchover extends SourceFlow {

  OverlaySwitchover(SourceMigration migration) {
    super(migration);
  }

  /**
   * Freezes every writable disk under a temporary overlay (one atomic, disk-only snapshot without
   * libvirt metadata): the files become read-only backing files, consistent, snapshots inside.
   */
  Behavior<Command> creatingOverlays() {
    migration.enter(
        MigrationPhase.CREATING_OVERLAYS,
        "freezing the disks under temporary overlays",
        services.settings().tools().commandTimeout());
    run.overlays = OverlayOps.plan(run.manifest);
    // journaled first: a crash may come mid-call
    if (!migration.record(new JournalEntry.OverlaysCreated())) {
      return migration.cannotJournal();
    }
    run.overlaysCreated = true;
    String vm = run.vm;
    Manifest manifest = run.manifest;
    List<DestinationProtocol.OverlaySpec> overlays = run.overlays;
    migration.act(
        () -> new OverlayOps(services).createOnSource(vm, manifest, overlays),
        OverlaysCreated::new);
    return migration.stepBeforeSwitchover(
        OverlaysCreated.class,
        "creating the overlays",
        m -> {
          migration.bulkCopy.startDirectoryCopy();
          return migration.bulkCopy.copying();
        });
  }

  /** Fresh overlays on the destination, immediately before the memory migration. */
  Behavior<Command> preparingOverlays() {
    run.target.tell(new DestinationProtocol.CreateOverlays(run.overlays, targetReplies));
    return migration.askedBeforeSwitchover(
        DestinationProtocol.OverlaysCreated.class,
        "creating the destination overlays",
        "",
        m -> migration.memory.migratingMemory());
  }

  /**
   * The VM runs on the destination, on its overlays; the destination merges them and proves the
   * result. Nothing is acknowledged before that: until then only the journal holds the snapshot
   * metadata, and a restart from a definition naming the original file would roll the disk back.
   */
  Behavior<Command> merging() {
    run.switchoverStarted = true;
    run.runningThereSince = System.currentTimeMillis();
    migration.record(new JournalEntry.SwitchedOver("libvirt's migration call returned"));
    migration.enter(
        MigrationPhase.MERGING,
        "merging the overlays on " + run.destination,
        services
            .settings()
            .migration()
            .timeouts()
            .verify()
            .plus(migration.copyTimeout(run.manifest.totalBytes())));
    run.target.tell(new DestinationProtocol.MergeOverlays(run.overlays, targetReplies));
    return withMergeResult(
        migration
            .state()
            .on(TargetGone.class, m -> awaitingRecoveredTarget(0))
            .on(
                PhaseTimeout.class,
                m ->
                    runsThereBut(
                        " but the merge did not finish in time; the agent there finishes it when it restarts")));
  }

  Behavior<Command> withMergeResult(StateBuilder<Command> state) {
    return migration.withCommon(
        state
            .on(
                DestinationProtocol.Merged.class,
                r -> {
                  return merged(r.resumedAtMillis(), r.mergedAtMillis(), r.verification());
                })
            .on(
                DestinationProtocol.Failed.class,
                failed ->
                    runsThereBut(
                        " on its temporary overlay chain (consistent), but: "
                            + failed.reason()
                            + "; the agent there finishes the merge when it restarts"))
            .on(Cancel.class, migration::refuseCancel));
  }

  /**
   * The destination merged and verified: the VM runs there on its own files. {@code mergedAt} is 0
   * when a restarted destination reported it (the time of the merge is not known then).
   */
  private Behavior<Command> merged(long resumedAt, long mergedAt, Verification verification) {
    run.resumedAt = resumedAt;
    if (mergedAt > 0) {
      run.mergedAt = mergedAt;
    }
    run.verification = verification;
    recordOverlayMerged();
    return migration.ack.acknowledging();
  }

  /** In the overlay flow each disk's last writes travel in its overlay, mirrored then committed. */
  void recordOverlayMerged() {
    for (DestinationProtocol.OverlaySpec o : run.overlays) {
      run.finalMethod.put(o.target(), o.shallow() ? "overlay-commit-shallow" : "overlay-commit");
    }
  }

  /**
   * The destination's agent stopped while merging. The VM keeps running there on a consistent
   * chain; when the agent restarts it finishes the merge from its journal. Ask it until it says.
   */
  Behavior<Command> awaitingRecoveredTarget(int polls) {
    if (polls == 0) {
      ctx.getLog()
          .warn(
              "{}: the agent on {} stopped during the merge; waiting for it to finish after its restart",
              run.vm,
              run.destination);
      run.note("the agent on " + run.destination + " restarted during the merge and finished it");
    }
    timers.startSingleTimer(
        RetryQuery.class,
        new RetryQuery(),
        services.settings().migration().intervals().recoveredDestinationPoll());
    return migration.withCommon(
        migration
            .state()
            .on(
                RetryQuery.class,
                m -> {
                  migration.preparation.findDestinationAgent();
                  return Behaviors.same();
                })
            .on(
                AgentListing.class,
                m -> {
                  if (m.agents().isEmpty()) {
                    return awaitingRecoveredTarget(polls + 1);
                  }
                  ctx.ask(
                      AgentProtocol.IncomingStatus.class,
                      m.agents().iterator().next(),
                      services.settings().migration().intervals().ask(),
                      ref -> new AgentProtocol.QueryIncoming(run.id, ref),
                      (status, err) -> status == null ? new RetryQuery() : new Queried(status));
                  return Behaviors.same();
                })
            .on(
                Queried.class,
                m -> {
                  AgentProtocol.IncomingStatus st = m.status();
                  if (st.state().equals("merged")) {
                    return merged(st.resumedAtMillis(), 0, st.verification());
                  }
                  if (st.state().equals("aborted")) {
                    return migration.failWithWhereabouts(
                        "the destination reports the incoming migration aborted after the switchover: "
                            + st.detail());
                  }
                  return awaitingRecoveredTarget(polls + 1);
                })
            .on(Cancel.class, migration::refuseCancel)
            .on(
                PhaseTimeout.class,
                m ->
                    runsThereBut(
                        " on its overlay chain; its agent did not report the merge in time")));
  }

  /** The job fails while the VM runs on the destination: {@code what} says how and what is left. */
  private Behavior<Command> runsThereBut(String what) {
    return migration.finish(MigrationOutcome.FAILED, run.vm + " runs on " + run.destination + what);
  }
}
