package dev.ferry.node.migration.recovery;

import static dev.ferry.node.migration.recovery.Journals.has;
import static dev.ferry.node.migration.recovery.Journals.last;
import static dev.ferry.node.migration.recovery.Journals.started;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.migration.FerryBitmaps;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.destination.DestinationMigration;
import dev.ferry.node.migration.overlay.OverlayMergeActor;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.node.migration.source.PeerTakeover;
import dev.ferry.node.migration.source.SourceHost;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.Verification;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.slf4j.Logger;

/**
 * Reconciles migrations a previous run of this agent left unfinished with libvirt's truth, when the
 * agent starts (invariant I4). Before the switchover the source rolls back (bitmaps removed,
 * snapshot metadata restored, the destination asked to clean up) and the destination removes the
 * directories it created; an acknowledged migration finishes its clean-up; a migration caught
 * between the switchover and the acknowledgement is left alone and reported, because only a human
 * can tell which host should win if both were touched.
 */
public final class Recovery {
  private final HostPorts services;
  private final Logger log;
  private final ActorSystem<?> system;
  private final List<Manifest> toMergeBack = new ArrayList<>();

  public Recovery(HostPorts services, Logger log, ActorSystem<?> system) {
    this.services = services;
    this.log = log;
    this.system = system;
  }

  /**
   * Reconciles every unfinished migration; returns the incoming overlay migrations whose VM runs
   * here with its merge unfinished, for the caller to finish ({@link
   * DestinationMigration#recover}).
   */
  public List<Manifest> reconcile() {
    List<Manifest> toMerge = new ArrayList<>();
    for (String id : services.journal().unfinished(MigrationJournal.Role.SOURCE)) {
      try {
        recoverSource(id);
      } catch (RuntimeException e) {
        log.error("recovery of outgoing migration {} failed: {}", id, e.getMessage());
      }
    }
    for (String id : services.journal().unfinished(MigrationJournal.Role.TARGET)) {
      try {
        new IncomingRecovery(services, log).recoverTarget(id).ifPresent(toMerge::add);
      } catch (RuntimeException e) {
        log.error("recovery of incoming migration {} failed: {}", id, e.getMessage());
      }
    }
    return toMerge;
  }

  /**
   * Outgoing overlay migrations, caught before the switchover, whose overlays must be merged back.
   */
  public List<Manifest> toMergeBack() {
    return List.copyOf(toMergeBack);
  }

  /**
   * Merges an interrupted outgoing overlay migration's overlays back into the source's files, then
   * restores the snapshot metadata and records the roll-back.
   */
  public static Behavior<OverlayMergeActor.Result> mergeBack(Manifest m, HostPorts services) {
    return Behaviors.setup(
        ctx -> {
          ctx.spawnAnonymous(
              OverlayMergeActor.create(m.vm(), OverlayOps.plan(m), 0, services, ctx.getSelf()));
          return Behaviors.receive(OverlayMergeActor.Result.class)
              .onAnyMessage(
                  result -> {
                    Recovery r = new Recovery(services, ctx.getLog(), ctx.getSystem());
                    String message;
                    MigrationOutcome outcome;
                    if (result instanceof OverlayMergeActor.Failed f) {
                      outcome = MigrationOutcome.FAILED;
                      message =
                          "the agent restarted before the switchover; merging the overlays back failed ("
                              + f.reason()
                              + "): "
                              + m.vm()
                              + " runs on "
                              + m.sourceHost()
                              + " on a consistent two-file chain";
                    } else {
                      SourceHost.restore(services.hypervisor(), m.vm(), m);
                      outcome = MigrationOutcome.ROLLED_BACK;
                      message =
                          "the agent restarted before the switchover; overlays merged back, snapshot metadata restored; "
                              + m.vm()
                              + " runs on "
                              + m.sourceHost();
                    }
                    MigrationOptions options =
                        started(
                                services
                                    .journal()
                                    .read(m.migrationId(), MigrationJournal.Role.SOURCE))
                            .map(JournalEntry.Started::options)
                            .orElse(null);
                    r.finish(
                        m.migrationId(),
                        m,
                        options,
                        outcome,
                        outcome == MigrationOutcome.FAILED ? "" : m.sourceHost(),
                        message);
                    return Behaviors.stopped();
                  })
              .build();
        });
  }

  /** The phase the source last entered, for messages. */
  private static String lastPhase(List<JournalEntry> entries) {
    return last(entries, JournalEntry.PhaseEntered.class)
        .map(p -> p.phase().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'))
        .orElse("preflight");
  }

  /**
   * Asks the destination's target actor, if the journal names one, to remove what it created; the
   * destination's own recovery removes it too if it restarted meanwhile.
   */
  private void askDestinationToCleanUp(
      List<JournalEntry> entries, Manifest m, List<String> undone) {
    last(entries, JournalEntry.TargetReady.class)
        .map(JournalEntry.TargetReady::targetRef)
        .ifPresent(
            ref -> {
              ActorRef<DestinationProtocol.Command> target =
                  ActorRefResolver.get(system).resolveActorRef(ref);
              target.tell(
                  new DestinationProtocol.Abort("the source agent restarted", system.ignoreRef()));
              undone.add("asked " + m.destinationHost() + " to remove its files");
            });
  }

  private void recoverSource(String id) {
    List<JournalEntry> entries = services.journal().read(id, MigrationJournal.Role.SOURCE);
    Optional<JournalEntry.Started> start = started(entries);
    if (start.isEmpty()) {
      return;
    }
    Manifest m = start.get().manifest();
    MigrationOptions options = start.get().options();
    String phase = lastPhase(entries);
    String vm = m.vm();
    SourceHost source = new SourceHost(services);
    if (has(entries, JournalEntry.Acknowledged.class)) {
      String message =
          "verified and running on "
              + m.destinationHost()
              + "; the agent restarted before removing the source's files";
      try {
        if (services.settings().migration().removeSourceFiles()) {
          source.removeFiles(m);
          message += ", which it did on restart";
        }
      } catch (Exception e) {
        message += "; removing them failed: " + e.getMessage();
      }
      finish(id, m, options, MigrationOutcome.COMPLETED, m.destinationHost(), message);
      return;
    }
    if ((has(entries, JournalEntry.SwitchedOver.class)
            || has(entries, JournalEntry.MigratingBack.class))
        && options.strategy() == MigrationStrategy.SUSPEND_SYNC) {
      takeOverAfterTheSwitchover(id, entries, m, options, phase);
      return;
    }
    if (has(entries, JournalEntry.SwitchedOver.class)
        || has(entries, JournalEntry.MigratingBack.class)) {
      String message =
          "the agent restarted after the switchover ("
              + phase
              + "): "
              + vm
              + " may be paused on "
              + m.destinationHost()
              + " while the files on "
              + m.sourceHost()
              + " are authoritative; left for an operator";
      leaveForAnOperator(id, m, options, message);
      return;
    }
    List<String> undone = new ArrayList<>();
    DomainState state = source.state(vm);
    if (has(entries, JournalEntry.ColdShutdown.class) && !state.active()) {
      recoverColdSource(id, entries, m, options, phase);
      return;
    }
    if (state.active() && has(entries, JournalEntry.OverlaysCreated.class)) {
      // the VM may run on its temporary overlays: merge them back first (an actor, on timers),
      // then restore the metadata and finish; see mergeBack()
      toMergeBack.add(m);
      return;
    }
    if (state.active()) {
      if (has(entries, JournalEntry.BitmapsAdded.class)) {
        String bitmap =
            last(entries, JournalEntry.BitmapsAdded.class)
                .map(JournalEntry.BitmapsAdded::bitmap)
                .orElse("ferry-" + id);
        try {
          Map<String, String> nodes = source.blockNodes(vm);
          for (ManifestDisk d : m.writableDisks()) {
            String node = nodes.get(d.path());
            if (node != null) {
              try {
                source.removeBitmap(vm, node, bitmap);
              } catch (RuntimeException absent) {
                // not on this disk (raw, or never added)
              }
            }
          }
          undone.add("dirty bitmaps removed");
        } catch (Exception e) {
          undone.add("bitmaps not removed: " + e.getMessage());
        }
      }
      if (has(entries, JournalEntry.MetadataDropping.class)) {
        source.restoreSnapshotMetadata(vm, m);
        undone.add("snapshot metadata restored");
      }
      if (state == DomainState.PAUSED) {
        services.hypervisor().resume(vm);
        undone.add(vm + " resumed");
      }
      askDestinationToCleanUp(entries, m, undone);
      finish(
          id,
          m,
          options,
          MigrationOutcome.ROLLED_BACK,
          m.sourceHost(),
          "the agent restarted during "
              + phase
              + "; rolled back: "
              + String.join("; ", undone)
              + "; "
              + vm
              + " runs on "
              + m.sourceHost());
    } else {
      finish(
          id,
          m,
          options,
          MigrationOutcome.FAILED,
          "",
          "the agent restarted during "
              + phase
              + " and "
              + vm
              + " is not active on "
              + m.sourceHost()
              + ": check "
              + m.destinationHost());
    }
  }

  /**
   * A cold move the agent left with the guest shut off here. Booted and verified on the
   * destination: finish as the acknowledgement would. Never asked to boot there: the destination
   * cannot be running it, so it starts here again. Asked but unanswered: only the destination
   * knows; the guest stays off here and an operator decides.
   */
  private void recoverColdSource(
      String id, List<JournalEntry> entries, Manifest m, MigrationOptions options, String phase) {
    String vm = m.vm();
    if (has(entries, JournalEntry.ColdStarted.class)) {
      String message = "verified and running on " + m.destinationHost() + "; moved cold";
      try {
        services.hypervisor().undefine(vm);
        if (services.settings().migration().removeSourceFiles()) {
          new SourceHost(services).removeFiles(m);
        }
        message +=
            "; the agent restarted before removing the source's definition and files,"
                + " which it did on restart";
      } catch (Exception e) {
        message += "; removing the source's definition and files failed: " + e.getMessage();
      }
      finish(id, m, options, MigrationOutcome.COMPLETED, m.destinationHost(), message);
      return;
    }
    if (has(entries, JournalEntry.ColdStartRequested.class)) {
      String message =
          "the agent restarted while "
              + m.destinationHost()
              + " was booting "
              + vm
              + " (cold move): it is shut off on "
              + m.sourceHost()
              + " with its files and is NOT restarted there; check "
              + m.destinationHost()
              + " before starting it anywhere";
      leaveForAnOperator(id, m, options, message);
      return;
    }
    List<String> undone = new ArrayList<>();
    askDestinationToCleanUp(entries, m, undone);
    try {
      services.hypervisor().start(vm);
      undone.add(vm + " started again");
      finish(
          id,
          m,
          options,
          MigrationOutcome.ROLLED_BACK,
          m.sourceHost(),
          "the agent restarted during a cold move ("
              + phase
              + ", never booted on "
              + m.destinationHost()
              + "); rolled back: "
              + String.join("; ", undone)
              + "; "
              + vm
              + " runs on "
              + m.sourceHost());
    } catch (RuntimeException e) {
      finish(
          id,
          m,
          options,
          MigrationOutcome.FAILED,
          "",
          "the agent restarted during a cold move ("
              + phase
              + ") and starting "
              + vm
              + " again failed: "
              + e.getMessage()
              + "; it is shut off on "
              + m.sourceHost()
              + " with its files intact");
    }
  }

  /**
   * Suspend-sync, the agent restarted after the switchover: the VM waits paused on the destination
   * (or already runs there, verified). Decided from libvirt on both hosts, as the live source does
   * when the destination's agent stops (PeerTakeover): a verified VM running there completes the
   * move; a paused one is taken back and resumed here on the source's files, which nothing wrote
   * since the pause.
   */
  private void takeOverAfterTheSwitchover(
      String id, List<JournalEntry> entries, Manifest m, MigrationOptions options, String phase) {
    String cause = "the agent restarted after the switchover (" + phase + ")";
    SourceHost source = new SourceHost(services);
    try {
      PeerTakeover.Found found = PeerTakeover.lookAndBringBack(services, m, m.destinationHost());
      switch (found) {
        case RUNS_THERE -> {
          String message =
              cause
                  + "; verified and running on "
                  + m.destinationHost()
                  + " (libvirt there says so)";
          if (services.settings().migration().removeSourceFiles()) {
            source.removeFiles(m);
            message += "; the source's files removed";
          }
          tellDestination(entries, new DestinationProtocol.Release("COMPLETED"));
          finish(id, m, options, MigrationOutcome.COMPLETED, m.destinationHost(), message);
        }
        case BACK_HERE, STILL_HERE -> {
          source.resumeBack(m.vm(), m, FerryBitmaps.of(id));
          tellDestination(
              entries,
              new DestinationProtocol.Abort("taken back by the source", system.ignoreRef()));
          finish(
              id,
              m,
              options,
              MigrationOutcome.MIGRATED_BACK,
              m.sourceHost(),
              cause
                  + "; "
                  + m.vm()
                  + (found == PeerTakeover.Found.BACK_HERE
                      ? " was taken back from " + m.destinationHost()
                      : " never left")
                  + " and resumed on "
                  + m.sourceHost()
                  + " with its snapshot metadata restored");
        }
        case NOT_THERE ->
            leaveForAnOperator(
                id,
                m,
                options,
                cause
                    + "; "
                    + m.vm()
                    + " is neither on "
                    + m.destinationHost()
                    + " nor paused here; its files on "
                    + m.sourceHost()
                    + " are authoritative");
      }
    } catch (Exception e) {
      leaveForAnOperator(
          id,
          m,
          options,
          cause
              + "; taking it over through "
              + m.destinationHost()
              + "'s libvirt failed ("
              + MigrationFailure.reason(e)
              + "): "
              + m.vm()
              + " may be paused there while the files on "
              + m.sourceHost()
              + " are authoritative");
    }
  }

  /** Tells the destination's migration actor, if the journal names one. */
  private void tellDestination(List<JournalEntry> entries, DestinationProtocol.Command command) {
    last(entries, JournalEntry.TargetReady.class)
        .map(JournalEntry.TargetReady::targetRef)
        .ifPresent(
            ref ->
                ActorRefResolver.get(system)
                    .<DestinationProtocol.Command>resolveActorRef(ref)
                    .tell(command));
  }

  /** No safe decision from this host's journal alone: the job fails and says what to check. */
  private void leaveForAnOperator(String id, Manifest m, MigrationOptions options, String message) {
    log.error("{}: {}", id, message);
    finish(id, m, options, MigrationOutcome.FAILED, "", message);
  }

  private void finish(
      String id,
      Manifest m,
      MigrationOptions options,
      MigrationOutcome outcome,
      String where,
      String message) {
    long now = System.currentTimeMillis();
    MigrationResult result =
        new MigrationResult(
            id,
            m.vm(),
            m.sourceHost(),
            m.destinationHost(),
            outcome,
            where,
            message,
            options == null ? null : options.strategy(),
            List.of(),
            Verification.none(),
            0,
            0,
            0,
            now,
            now,
            m.snapshots().stream().map(s -> s.name()).toList());
    try {
      services
          .journal()
          .append(id, MigrationJournal.Role.SOURCE, new JournalEntry.Finished(result));
    } catch (RuntimeException e) {
      log.error(
          "{}: recovered as {} but the journal cannot be written: {}", id, outcome, e.getMessage());
    }
    log.info("{}: recovered as {}: {}", id, outcome, message);
  }
}
