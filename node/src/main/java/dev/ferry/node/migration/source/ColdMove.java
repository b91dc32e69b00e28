package dev.ferry.node.migration.source;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.source.SourceMessage.DefinitionRead;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMessage.PollShutdown;
import dev.ferry.node.migration.source.SourceMessage.ShutdownPolled;
import dev.ferry.node.migration.source.SourceMessage.ShutdownRequested;
import dev.ferry.node.migration.source.SourceMessage.SourceUndefined;
import dev.ferry.node.migration.source.SourceMessage.TargetGone;
import dev.ferry.node.migration.source.SourceMigration.Cancel;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import java.time.Duration;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The cold move, for guests that cannot move live: the ACPI power button (never forced off), the
 * quiescent copies, the boot on the destination with the snapshot metadata, then the shut-off
 * definition here goes.
 */
final class ColdMove extends SourceFlow {

  ColdMove(SourceMigration migration) {
    super(migration);
  }

  /**
   * Cold strategy: the ACPI power button, then the domain's state until it is shut off. A guest
   * that ignores the button is never forced off: the move rolls back and it keeps running.
   */
  Behavior<Command> shuttingDown() {
    Duration limit = services.settings().migration().timeouts().shutdown();
    migration.enter(
        MigrationPhase.SHUTTING_DOWN, "asking " + run.vm + " to power off (ACPI)", limit);
    run.shutdownRequested = true; // journaled first: a crash may come mid-call
    if (!migration.record(new JournalEntry.ColdShutdown())) {
      run.shutdownRequested = false;
      return migration.cannotJournal();
    }
    run.sourceSuspendedAt = System.currentTimeMillis();
    String vm = run.vm;
    migration.act(
        () -> {
          if (source.state(vm).active()) {
            services.hypervisor().shutdown(vm);
          }
        },
        ShutdownRequested::new);
    return migration.withCommon(
        migration
            .state()
            .on(
                ShutdownRequested.class,
                m -> {
                  if (m.failed()) {
                    return migration.undo.rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "pressing the ACPI power button of "
                            + run.vm
                            + " failed: "
                            + MigrationFailure.reason(m.error()));
                  }
                  pollState(); // off already?
                  return Behaviors.same();
                })
            .on(
                PollShutdown.class,
                m -> {
                  pollState();
                  return Behaviors.same();
                })
            .on(
                ShutdownPolled.class,
                m -> {
                  if (!m.failed() && m.state() == DomainState.SHUTOFF) {
                    migration.record(new JournalEntry.ShutOff());
                    migration.bulkCopy.startDirectoryCopy();
                    return migration.bulkCopy.copying();
                  }
                  return pollShutdown();
                })
            .on(Cancel.class, migration::cancelAndRollBack)
            .on(
                PhaseTimeout.class,
                m ->
                    migration.undo.rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        run.vm
                            + " did not power off within "
                            + limit.toSeconds()
                            + " s of the ACPI button; it was not forced (it may still power off"
                            + " if its shutdown is under way)")));
  }

  private void pollState() {
    String vm = run.vm;
    migration.blocking(() -> source.state(vm), ShutdownPolled::new);
  }

  Behavior<Command> pollShutdown() {
    timers.startSingleTimer(
        PollShutdown.class,
        new PollShutdown(),
        services.settings().migration().intervals().shutdownPoll());
    return Behaviors.same();
  }

  /**
   * Cold strategy: the destination defines the guest from this host's persistent XML, redefines its
   * snapshots and boots it; then the definition here goes. Once the boot was asked for, a silent
   * destination leaves the guest off on both hosts rather than risk running it twice.
   */
  Behavior<Command> startingOnDestination() {
    migration.enter(
        MigrationPhase.STARTING,
        "booting " + run.vm + " on " + run.destination + " with its snapshot metadata",
        services.settings().migration().timeouts().verify());
    String vm = run.vm;
    String host = services.settings().host();
    migration.blocking(
        () -> {
          // a guest started here meanwhile (OpenNebula, an HA hook, a person) must not also boot
          // there: its copies are of a running disk, and it would run twice
          if (source.state(vm).active()) {
            throw new MigrationFailure(
                vm + " was started on " + host + " during the cold move; it runs there");
          }
          return services.hypervisor().definition(vm, true).xml();
        },
        DefinitionRead::new);
    return migration.withCommon(
        migration
            .state()
            .on(
                DefinitionRead.class,
                m -> {
                  if (m.failed()) {
                    return migration.undo.rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "before the boot on "
                            + run.destination
                            + ": "
                            + MigrationFailure.reason(m.error()));
                  }
                  if (!migration.record(new JournalEntry.ColdStartRequested())) {
                    return migration.cannotJournal();
                  }
                  run.coldStartRequested = true;
                  run.target.tell(new DestinationProtocol.StartCold(m.xml(), targetReplies));
                  return Behaviors.same();
                })
            .on(
                DestinationProtocol.ColdStarted.class,
                c -> {
                  run.verification = c.verification();
                  run.resumedAt = c.startedAtMillis();
                  return undefiningOnSource();
                })
            .on(
                DestinationProtocol.Failed.class,
                failed -> migration.undo.rollingBack(MigrationOutcome.ROLLED_BACK, failed.reason()))
            .on(
                Cancel.class,
                m ->
                    run.coldStartRequested
                        ? migration.refuseCancel(m)
                        : migration.cancelAndRollBack(m))
            .on(
                TargetGone.class,
                m ->
                    migration.finish(
                        MigrationOutcome.FAILED,
                        "the agent on "
                            + run.destination
                            + " stopped while booting "
                            + run.vm
                            + "; "
                            + whereIsTheColdVm()))
            .on(
                PhaseTimeout.class,
                m ->
                    migration.finish(
                        MigrationOutcome.FAILED,
                        run.destination
                            + " did not report the boot in time; "
                            + whereIsTheColdVm())));
  }

  /** Cold strategy: the guest runs verified on the destination; its old definition goes. */
  Behavior<Command> undefiningOnSource() {
    migration.record(new JournalEntry.ColdStarted());
    String vm = run.vm;
    migration.blocking(
        () -> {
          if (source.state(vm).active()) {
            return false; // started here while it booted there: never undefine a running guest
          }
          services.hypervisor().undefine(vm);
          return true;
        },
        (undefined, error) -> new SourceUndefined(Boolean.TRUE.equals(undefined), error));
    return migration.withCommon(
        migration
            .state()
            .on(
                SourceUndefined.class,
                m -> {
                  if (!m.failed() && !m.undefined()) {
                    return migration.ack.sourceRunsToo(
                        "it was started on "
                            + services.settings().host()
                            + " while it booted there");
                  }
                  if (m.failed()) {
                    run.note(
                        "removing the shut-off definition on "
                            + services.settings().host()
                            + " failed ("
                            + MigrationFailure.reason(m.error())
                            + "): undefine it there, never start it");
                  }
                  return migration.ack.acknowledgingNow();
                })
            .on(Cancel.class, migration::refuseCancel)
            .on(PhaseTimeout.class, m -> Behaviors.same()));
  }

  String coldBreakdown() {
    return String.format(
        "; moved cold: down %d ms from the ACPI button until it booted on %s",
        run.resumedAt - run.sourceSuspendedAt, run.destination);
  }

  /** Cold strategy, when the destination did not say whether the guest runs there. */
  String whereIsTheColdVm() {
    return run.vm
        + " is shut off on "
        + services.settings().host()
        + " with its files and is NOT restarted there: "
        + run.destination
        + " may have booted it; check "
        + run.destination
        + " before starting it anywhere (journal "
        + run.id
        + ")";
  }
}
