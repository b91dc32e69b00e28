package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.CopyPipelines;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.overlay.OverlayMergeActor;
import dev.ferry.node.migration.source.SourceMessage.MemoryDone;
import dev.ferry.node.migration.source.SourceMessage.MergedBack;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMessage.ResumedHere;
import dev.ferry.node.migration.source.SourceMessage.SourceRestarted;
import dev.ferry.node.migration.source.SourceMessage.TargetGone;
import dev.ferry.node.migration.source.SourceMessage.UndoneOnSource;
import dev.ferry.node.migration.source.SourceMigration.Cancel;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Undo: before the switchover a rollback (copies stopped, the memory job aborted, overlays merged
 * back, bitmaps removed, metadata restored, the destination cleans up, a cold guest boots here
 * again); after it, the paused VM is migrated back and resumed here.
 */
final class Undo extends SourceFlow {

  Undo(SourceMigration migration) {
    super(migration);
  }

  /**
   * Undoes everything done before the switchover, in reverse: copies stopped, the memory job
   * aborted, bitmaps removed, snapshot metadata restored, the destination's files removed.
   */
  Behavior<Command> rollingBack(MigrationOutcome outcome, String cause) {
    migration.enter(
        MigrationPhase.ROLLING_BACK, cause, services.settings().migration().timeouts().rollback());
    timers.cancel("poll-job");
    migration.record(new JournalEntry.RollingBack(cause));
    migration.stopDisks();
    run.ancillaryCopies.forEach(CopyPipelines.Copy::cancel);
    List<String> undone = new ArrayList<>();
    if (run.memoryStarted && !run.memoryReturned) {
      migration.memory.abortJob("rolling back");
      // wait for libvirt's migration call to return before touching the domain
      return migration.waiting(
          migration
              .state()
              .on(
                  MemoryDone.class,
                  m -> {
                    run.memoryReturned = true;
                    if (m.error() == null && run.target == null) {
                      return migration.failWithWhereabouts(
                          cause
                              + "; the memory migration completed before the abort took effect"
                              + " and the destination's agent is gone");
                    }
                    if (m.error() == null) {
                      // the migration finished after all: the VM is on the destination, paused
                      return migration.suspendSync.switchedOver(
                          "the memory migration completed before the abort took effect");
                    }
                    return overlaysToMergeBack()
                        ? mergingBackOnSource(outcome, cause, undone)
                        : undoOnSource(outcome, cause, undone);
                  })
              .on(
                  DestinationProtocol.DestinationPaused.class,
                  m -> {
                    run.memoryReturned = true;
                    return migration.suspendSync.switchedOver(
                        "the destination paused before the abort took effect");
                  }),
          migration::refuseCancelRollingBack,
          () -> cause + "; the memory job did not end after an abort; " + migration.whereIsTheVm());
    }
    return overlaysToMergeBack()
        ? mergingBackOnSource(outcome, cause, undone)
        : undoOnSource(outcome, cause, undone);
  }

  /**
   * The merge actor's first step checks (off this thread) whether each disk is still on its
   * overlay.
   */
  boolean overlaysToMergeBack() {
    return run.overlaysCreated;
  }

  /**
   * Rollback before the switchover: merge the overlays back into the source's files, as the
   * destination would have (docs/overlay.md); an aborted commit is harmless and is retried.
   */
  Behavior<Command> mergingBackOnSource(
      MigrationOutcome outcome, String cause, List<String> undone) {
    ctx.spawnAnonymous(
        OverlayMergeActor.create(
            run.vm,
            run.overlays,
            0, // on the source, rolling back: as fast as it can
            services,
            ctx.messageAdapter(OverlayMergeActor.Result.class, MergedBack::new)));
    return migration.waiting(
        migration
            .state()
            .on(
                MergedBack.class,
                m -> {
                  if (m.result() instanceof OverlayMergeActor.Failed f) {
                    undone.add(
                        "the overlays could not be merged back ("
                            + f.reason()
                            + "): "
                            + run.vm
                            + " runs on "
                            + services.settings().host()
                            + " on a consistent two-file chain");
                  } else {
                    undone.add("overlays merged back");
                    run.overlaysCreated = false;
                  }
                  return undoOnSource(outcome, cause, undone);
                }),
        migration::refuseCancelRollingBack,
        null);
  }

  Behavior<Command> undoOnSource(MigrationOutcome outcome, String cause, List<String> undone) {
    String vm = run.vm;
    Manifest manifest = run.manifest;
    Map<String, String> nodes = run.blockNodes;
    String bitmap = run.bitmapName();
    boolean bitmapsAdded = run.bitmapsAdded;
    boolean metadataDropped = run.metadataDropped;
    List<ManifestDisk> deltaDisks = run.deltaDisks();
    migration.blocking(
        () -> {
          List<String> done = new ArrayList<>();
          try {
            DomainState state = source.state(vm);
            if (bitmapsAdded && state.active()) {
              for (ManifestDisk d : deltaDisks) {
                String node = nodes.get(d.path());
                if (node != null) {
                  try {
                    source.removeBitmap(vm, node, bitmap);
                  } catch (RuntimeException e) {
                    done.add("bitmap on " + d.target() + " not removed: " + e.getMessage());
                  }
                }
              }
              done.add("dirty bitmaps removed");
            }
            if (metadataDropped) {
              source.restoreSnapshotMetadata(vm, manifest);
              done.add("snapshot metadata restored");
            }
            if (state == DomainState.PAUSED) {
              services.hypervisor().resume(vm);
              done.add(vm + " resumed");
            }
          } catch (RuntimeException e) {
            return new UndoneOnSource(done, e);
          }
          return new UndoneOnSource(done, null);
        },
        (done, error) -> error == null ? done : new UndoneOnSource(List.of(), error));
    return migration.waiting(
        migration
            .state()
            .on(
                UndoneOnSource.class,
                m -> {
                  undone.addAll(m.undone());
                  if (m.failed()) {
                    undone.add(
                        "undoing on "
                            + services.settings().host()
                            + " failed: "
                            + MigrationFailure.reason(m.error()));
                  }
                  // without the destination's word: its part is undone unless a cold boot was asked
                  java.util.function.Function<String, Behavior<Command>> unconfirmed =
                      why -> {
                        if (why != null) {
                          undone.add(why);
                        }
                        return afterDestinationUndone(
                            outcome, cause, undone, m.error() == null, !run.coldStartRequested);
                      };
                  if (run.target == null) {
                    return unconfirmed.apply(null);
                  }
                  run.target.tell(new DestinationProtocol.Abort(cause, targetReplies));
                  return migration.waiting(
                      migration
                          .state()
                          .on(
                              DestinationProtocol.Aborted.class,
                              aborted -> {
                                int n = aborted.removed().size();
                                undone.add(
                                    n + " file(s) of this migration removed on " + run.destination);
                                return afterDestinationUndone(
                                    outcome, cause, undone, m.error() == null, true);
                              })
                          .on(
                              DestinationProtocol.Failed.class,
                              failed -> {
                                undone.add(
                                    "the destination could not clean up: " + failed.reason());
                                return afterDestinationUndone(
                                    outcome, cause, undone, m.error() == null, false);
                              })
                          .on(
                              TargetGone.class,
                              r ->
                                  unconfirmed.apply(
                                      "the destination agent is gone; it removes its leftovers when it restarts"))
                          .on(
                              PhaseTimeout.class,
                              r ->
                                  unconfirmed.apply(
                                      "the destination did not confirm its clean-up")),
                      migration::refuseCancelRollingBack,
                      null);
                }),
        migration::refuseCancelRollingBack,
        () -> cause + "; undoing timed out; " + migration.whereIsTheVm());
  }

  /**
   * Cold strategy: a guest shut off for the move runs again on this host only if the destination
   * cannot be running it: it confirmed its clean-up, or it was never asked to boot it.
   */
  Behavior<Command> afterDestinationUndone(
      MigrationOutcome outcome,
      String cause,
      List<String> undone,
      boolean sourceOk,
      boolean destinationClear) {
    if (!run.cold() || !run.shutdownRequested) {
      return finishRollback(outcome, cause, undone, sourceOk);
    }
    if (!destinationClear) {
      return migration.finish(
          MigrationOutcome.FAILED,
          cause
              + (undone.isEmpty() ? "" : "; " + String.join("; ", undone))
              + "; "
              + migration.cold.whereIsTheColdVm());
    }
    String vm = run.vm;
    migration.blocking(
        () -> {
          if (source.state(vm).active()) {
            return false; // it never powered off
          }
          services.hypervisor().start(vm);
          return true;
        },
        (started, error) -> new SourceRestarted(Boolean.TRUE.equals(started), error));
    return migration.waiting(
        migration
            .state()
            .on(
                SourceRestarted.class,
                m -> {
                  if (m.failed()) {
                    undone.add(
                        "starting "
                            + run.vm
                            + " again failed: "
                            + MigrationFailure.reason(m.error())
                            + "; it is shut off on "
                            + services.settings().host()
                            + " with its files intact");
                    return finishRollback(outcome, cause, undone, false);
                  }
                  if (m.started()) {
                    undone.add(run.vm + " started again");
                  }
                  return finishRollback(outcome, cause, undone, sourceOk);
                }),
        migration::refuseCancelRollingBack,
        () ->
            cause
                + "; starting "
                + run.vm
                + " again timed out; "
                + migration.cold.whereIsTheColdVm());
  }

  Behavior<Command> finishRollback(
      MigrationOutcome outcome, String cause, List<String> undone, boolean sourceOk) {
    String message = cause + (undone.isEmpty() ? "" : "; " + String.join("; ", undone));
    if (!sourceOk) {
      return migration.failWithWhereabouts(message);
    }
    return migration.finish(
        outcome, message + "; " + run.vm + " runs on " + services.settings().host());
  }

  /**
   * Verification failed after the switchover: the paused VM's memory goes back to the source, whose
   * files were never touched, and it resumes there.
   */
  Behavior<Command> migratingBack(String cause) {
    migration.enter(
        MigrationPhase.MIGRATING_BACK,
        cause + ": migrating " + run.vm + " back",
        services.settings().migration().timeouts().memory(run.manifest.memoryKiB() * 1024));
    migration.record(new JournalEntry.MigratingBack(cause));
    migration.stopDisks();
    // an incoming migration of a domain this host's confirm phase still holds would be refused
    return migration.afterLibvirtReturned(cause, () -> sendBack(cause));
  }

  /**
   * Back here, paused: the source QEMU stored the dirty bitmaps in the files when it stopped, and
   * the images stay inactive until the resume, so qemu-img may remove them; then the snapshot
   * metadata is restored and the VM resumes.
   */
  private void resumeHere() {
    String vm = run.vm;
    Manifest manifest = run.manifest;
    String bitmap = run.bitmapName();
    migration.act(() -> source.resumeBack(vm, manifest, bitmap), ResumedHere::new);
  }

  Behavior<Command> sendBack(String cause) {
    run.target.tell(new DestinationProtocol.MigrateBack(services.settings().host(), targetReplies));
    return migration.withCommon(
        migration
            .state()
            .on(
                DestinationProtocol.MigratedBack.class,
                m -> {
                  ctx.unwatch(run.target); // its part is done; it stops when released
                  resumeHere();
                  return Behaviors.same();
                })
            .on(ResumedHere.class, m -> resumedHere(m, cause))
            .on(
                DestinationProtocol.Failed.class,
                failure ->
                    migration.failWithWhereabouts(
                        cause + "; migrating back failed: " + failure.reason()))
            .on(Cancel.class, migration::refuseCancel)
            .on(
                PhaseTimeout.class,
                m -> migration.failWithWhereabouts(cause + "; migrating back timed out")));
  }

  /**
   * The VM is back here, paused, its files untouched: remove the bitmaps, restore the snapshot
   * metadata and resume it.
   */
  Behavior<Command> resumingHere(String cause) {
    resumeHere();
    return migration.waiting(
        migration.state().on(ResumedHere.class, m -> resumedHere(m, cause)),
        migration::refuseCancel,
        () -> cause + "; resuming " + run.vm + " here timed out; " + migration.whereIsTheVm());
  }

  private Behavior<Command> resumedHere(ResumedHere m, String cause) {
    if (m.failed()) {
      return migration.failWithWhereabouts(
          cause
              + "; migrated back to "
              + services.settings().host()
              + " but resuming failed: "
              + MigrationFailure.reason(m.error()));
    }
    run.resumedAt = System.currentTimeMillis();
    return migration.finish(
        MigrationOutcome.MIGRATED_BACK,
        cause
            + "; "
            + run.vm
            + " was migrated back and resumed on "
            + services.settings().host()
            + " with its snapshot metadata restored");
  }
}
