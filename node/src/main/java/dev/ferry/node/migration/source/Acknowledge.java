package dev.ferry.node.migration.source;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.StateBuilder;
import dev.ferry.node.migration.source.SourceMessage.ConfirmWaitOver;
import dev.ferry.node.migration.source.SourceMessage.MemoryDone;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMessage.RecheckSourceDomain;
import dev.ferry.node.migration.source.SourceMessage.SourceCleanedUp;
import dev.ferry.node.migration.source.SourceMessage.SourceDomainChecked;
import dev.ferry.node.migration.source.SourceMessage.SourcePaused;
import dev.ferry.node.migration.source.SourceMessage.SourceStateAtConfirm;
import dev.ferry.node.migration.source.SourceMigration.Cancel;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.node.migration.source.SourceMigration.Watch;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Acknowledgement and clean-up: once the destination runs the verified VM (and libvirt removed the
 * source's domain), the result goes to the watchers, then this host's files are removed.
 */
final class Acknowledge extends SourceFlow {

  Acknowledge(SourceMigration migration) {
    super(migration);
  }

  /**
   * Verified and running on the destination. The final sync started before libvirt's confirm phase
   * on this host ended (to keep it out of the paused window), so the source's definition may still
   * exist for a second or two; acknowledge once libvirt has removed it, so that "completed" also
   * means the VM is defined on one host only. The VM runs on the destination already: the wait
   * costs no paused time.
   */
  Behavior<Command> acknowledging() {
    if (!run.memoryStarted || run.memoryReturned) {
      return acknowledgingNow();
    }
    // the domain itself is the fact to wait for: libvirt's call may have returned while this
    // actor was in a state that does not track it
    checkSourceDomain();
    timers.startSingleTimer(
        "confirm-wait",
        new ConfirmWaitOver(),
        services.settings().migration().intervals().confirmWait());
    return migration.withCommon(
        migration
            .state()
            .on(
                MemoryDone.class,
                m -> {
                  migration.memoryReturnedAfterSwitchover(m);
                  return confirmed();
                })
            .on(
                SourceDomainChecked.class,
                m -> {
                  if (m.gone()) {
                    return confirmed();
                  }
                  timers.startSingleTimer(
                      "confirm-poll",
                      new RecheckSourceDomain(),
                      services.settings().migration().intervals().confirmPoll());
                  return Behaviors.same();
                })
            .on(
                RecheckSourceDomain.class,
                m -> {
                  checkSourceDomain();
                  return Behaviors.same();
                })
            .on(
                ConfirmWaitOver.class,
                m -> {
                  String vm = run.vm;
                  migration.blocking(() -> source.state(vm), SourceStateAtConfirm::new);
                  return Behaviors.same();
                })
            .on(
                SourceStateAtConfirm.class,
                m -> {
                  if (m.error() == null && m.state() == DomainState.RUNNING) {
                    return sourceRunsToo(
                        "libvirt resumed it on " + services.settings().host() + " as well");
                  }
                  run.note(
                      "libvirt's migration call on "
                          + services.settings().host()
                          + " had not returned "
                          + services.settings().migration().intervals().confirmWait().toSeconds()
                          + " s after the resume; the source's definition may"
                          + " remain until it does");
                  return confirmed();
                }));
  }

  /**
   * The source domain runs beside the verified, running destination: libvirt's confirm phase
   * resumed it (its call never returned), or someone started a cold-moved guest here while it
   * booted there. Two guests of one disk's history: the destination's is the verified one, the
   * source's is paused to stop the divergence and nothing of it is removed ({@code how} says which
   * case). Only a person can say whether the source's writes since matter.
   */
  Behavior<Command> sourceRunsToo(String how) {
    timers.cancel("confirm-poll");
    String vm = run.vm;
    migration.act(() -> services.hypervisor().suspend(vm), SourcePaused::new);
    return migration.waiting(
        migration
            .state()
            .on(
                SourcePaused.class,
                m ->
                    migration.finish(
                        MigrationOutcome.FAILED,
                        run.destination,
                        vm
                            + " runs verified on "
                            + run.destination
                            + ", but "
                            + how
                            + " ("
                            + (m.error() == null
                                ? "paused there now"
                                : "pausing it there failed: " + MigrationFailure.reason(m.error()))
                            + "); nothing was removed on "
                            + services.settings().host()
                            + ". Keep the copy on "
                            + run.destination
                            + " and remove the other with virsh destroy "
                            + vm
                            + " and virsh undefine "
                            + vm
                            + " on "
                            + services.settings().host()
                            + " (its files too, once you are sure)")),
        migration::refuseCancel,
        () -> vm + " runs on " + run.destination + " and was running again on the source");
  }

  void checkSourceDomain() {
    String vm = run.vm;
    ctx.pipeToSelf(
        CompletableFuture.supplyAsync(
            () -> services.hypervisor().lookup(vm).isEmpty(), services.blocking()),
        // a lookup that fails must not hold the acknowledgement back
        (gone, err) -> new SourceDomainChecked(err != null || gone));
  }

  Behavior<Command> confirmed() {
    timers.cancel("confirm-wait");
    timers.cancel("confirm-poll");
    return acknowledgingNow();
  }

  /** Tell the watchers, then remove the source's files. */
  Behavior<Command> acknowledgingNow() {
    migration.record(new JournalEntry.Acknowledged());
    MigrationResult result =
        migration.result(
            MigrationOutcome.COMPLETED,
            run.destination,
            "verified and running on "
                + run.destination
                + (run.overlay()
                    ? overlayBreakdown()
                    : run.cold() ? migration.cold.coldBreakdown() : pausedBreakdown()));
    migration.announce(result);
    migration.stopDisks();
    migration.enter(
        MigrationPhase.SOURCE_CLEANUP,
        "removing the source's files",
        services.settings().tools().commandTimeout());
    boolean remove = services.settings().migration().removeSourceFiles();
    Manifest manifest = run.manifest;
    List<DestinationProtocol.OverlaySpec> overlays = run.overlays;
    migration.blocking(
        () -> {
          // the overlays first: the VM's directories are removed only once empty
          List<String> removed = new ArrayList<>();
          for (DestinationProtocol.OverlaySpec o : overlays) {
            if (Files.deleteIfExists(services.files().local(o.overlay()))) {
              removed.add(o.overlay());
            }
          }
          if (remove) {
            removed.addAll(source.removeFiles(manifest));
          }
          return removed;
        },
        SourceCleanedUp::new);
    return announced(
        result,
        migration
            .state()
            .on(
                SourceCleanedUp.class,
                m -> {
                  if (m.failed()) {
                    ctx.getLog()
                        .warn(
                            "{}: removing the source's files failed: {}",
                            run.vm,
                            MigrationFailure.reason(m.error()));
                  }
                  MigrationResult finalResult =
                      m.error() == null
                          ? result
                          : migration.result(
                              MigrationOutcome.COMPLETED,
                              run.destination,
                              result.message()
                                  + "; removing the source's files failed: "
                                  + MigrationFailure.reason(m.error()));
                  migration.record(new JournalEntry.Finished(finalResult));
                  if (run.target != null) {
                    run.target.tell(
                        new DestinationProtocol.Release(MigrationOutcome.COMPLETED.name()));
                  }
                  return awaitMemoryCallThenStop(finalResult);
                }));
  }

  /**
   * libvirt's migration call returns only after its confirm phase on this host (QEMU reaped); wait
   * for it, so that a failure there is logged, not lost with the actor.
   */
  Behavior<Command> awaitMemoryCallThenStop(MigrationResult result) {
    if (!run.memoryStarted || run.memoryReturned) {
      return Behaviors.stopped();
    }
    timers.startSingleTimer(
        PhaseTimeout.class,
        new PhaseTimeout(MigrationPhase.FINISHED),
        services.settings().migration().intervals().confirmAfterAck());
    return announced(
        result,
        migration
            .state()
            .on(
                MemoryDone.class,
                m -> {
                  if (m.error() != null) {
                    ctx.getLog()
                        .warn(
                            "{}: libvirt's confirm phase reported: {}",
                            run.vm,
                            MigrationFailure.reason(m.error()));
                  }
                  return Behaviors.stopped();
                })
            .on(
                PhaseTimeout.class,
                m -> {
                  ctx.getLog()
                      .warn(
                          "{}: libvirt's migration call had not returned {} s after the acknowledgement",
                          run.vm,
                          services
                              .settings()
                              .migration()
                              .intervals()
                              .confirmAfterAck()
                              .toSeconds());
                  return Behaviors.stopped();
                }));
  }

  /**
   * After the result was announced: a late watcher gets the result, a cancel is refused, anything
   * else waits for the state's own handlers.
   */
  private Behavior<Command> announced(MigrationResult result, StateBuilder<Command> state) {
    return state
        .on(
            Watch.class,
            m -> {
              m.watcher().tell(new MigrationEvent.Finished(result));
              return Behaviors.same();
            })
        .on(Cancel.class, migration::refuseCancel)
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Where the paused window went, for operators and the benchmark. */
  String pausedBreakdown() {
    if (run.sourceSuspendedAt == 0
        || run.switchedOverAt == 0
        || run.finalSyncedAt == 0
        || run.resumedAt == 0) {
      return "";
    }
    return String.format(
        "; paused %d ms: switchover until the destination was paused %d ms, final sync %d ms,"
            + " verification and resume %d ms",
        run.resumedAt - run.sourceSuspendedAt,
        run.switchedOverAt - run.sourceSuspendedAt,
        run.finalSyncedAt - run.switchedOverAt,
        run.resumedAt - run.finalSyncedAt);
  }

  String overlayBreakdown() {
    if (run.sourceSuspendedAt == 0 || run.resumedAt == 0) {
      return "";
    }
    return String.format(
        "; paused %d ms (libvirt's own switchover; only the overlays were mirrored), overlays merged %d ms after the resume",
        run.resumedAt - run.sourceSuspendedAt, Math.max(0, run.mergedAt - run.resumedAt));
  }
}
