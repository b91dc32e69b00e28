package dev.ferry.node.migration.source;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.source.SourceMessage.AgentListing;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMessage.Preflighted;
import dev.ferry.node.migration.source.SourceMessage.RetryContact;
import dev.ferry.node.migration.source.SourceMessage.TargetGone;
import dev.ferry.node.migration.source.SourceMigration.Cancel;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * Preflight (this host reads the VM into the manifest) and contact (the destination's agent
 * prepares its directories). Nothing is changed before this flow ends; a failure here is a refusal.
 */
final class Preparation extends SourceFlow {

  Preparation(SourceMigration migration) {
    super(migration);
  }

  /** Reads the VM, its disks and snapshots on this host into the manifest. */
  Behavior<Command> preflight() {
    migration.enter(
        MigrationPhase.PREFLIGHT,
        "reading " + run.vm + " and its disks",
        services.settings().migration().timeouts().preflight());
    String id = run.id;
    String vm = run.vm;
    String destination = run.destination;
    SourceFacts facts = run;
    migration.blocking(
        () -> {
          Manifest m = source.manifest(id, vm, destination);
          List<String> notes = source.removeLeftoverBitmaps(vm);
          // wantsDelta reads only the options, which never change
          boolean anyDelta = m.writableDisks().stream().anyMatch(facts::wantsDelta);
          return new Preflighted(m, anyDelta ? source.blockNodes(vm) : Map.of(), notes, null);
        },
        (done, error) -> error == null ? done : new Preflighted(null, Map.of(), List.of(), error));
    return migration.withCommon(
        migration
            .state()
            .on(
                Preflighted.class,
                m -> {
                  if (m.failed()) {
                    return migration.finish(
                        MigrationOutcome.ROLLED_BACK,
                        "refused in preflight: "
                            + MigrationFailure.reason(m.error())
                            + "; nothing was changed");
                  }
                  if (run.cold() && m.manifest().transientDomain()) {
                    // a transient domain vanishes when it shuts down: nothing would be left to
                    // boot here if the destination failed (OpenNebula moves its VMs cold itself,
                    // with a poweroff migration)
                    return migration.finish(
                        MigrationOutcome.ROLLED_BACK,
                        "refused in preflight: "
                            + run.vm
                            + " is a transient domain and moves live only; nothing was changed");
                  }
                  run.manifest = m.manifest();
                  run.blockNodes = m.blockNodes();
                  m.notes().forEach(run::note);
                  if (!migration.record(new JournalEntry.Started(run.manifest, run.options))) {
                    return migration.finish(
                        MigrationOutcome.ROLLED_BACK,
                        "refused: " + migration.journalUnwritable() + "; nothing was changed");
                  }
                  migration.subscribeToSourceEvents();
                  return contacting();
                })
            .on(Cancel.class, m -> migration.cancelBeforeStart(m))
            .on(
                PhaseTimeout.class,
                m ->
                    migration.finish(
                        MigrationOutcome.ROLLED_BACK, "preflight timed out; nothing was changed")));
  }

  /** Finds the destination's agent (retrying while it registers) and asks it to prepare. */
  Behavior<Command> contacting() {
    migration.enter(
        MigrationPhase.PREPARING_DESTINATION,
        "contacting the agent on " + run.destination,
        services.settings().migration().timeouts().contact());
    findDestinationAgent();
    return migration.withCommon(
        migration
            .state()
            .on(
                AgentListing.class,
                m -> {
                  if (m.agents().isEmpty()) {
                    timers.startSingleTimer(
                        RetryContact.class,
                        new RetryContact(),
                        services.settings().migration().intervals().contactRetry());
                  } else {
                    m.agents()
                        .iterator()
                        .next()
                        .tell(
                            new AgentProtocol.PrepareIncoming(
                                run.manifest, run.options, targetReplies));
                  }
                  return Behaviors.same();
                })
            .on(
                RetryContact.class,
                m -> {
                  findDestinationAgent();
                  return Behaviors.same();
                })
            .on(
                DestinationProtocol.Ready.class,
                ready -> {
                  run.target = ready.target();
                  ctx.watchWith(run.target, new TargetGone());
                  if (!migration.record(
                      new JournalEntry.TargetReady(
                          ActorRefResolver.get(ctx.getSystem()).toSerializationFormat(run.target),
                          run.destination))) {
                    return migration.cannotJournal();
                  }
                  if (run.overlay()) {
                    return migration.memory.droppingMetadata(migration.overlay::creatingOverlays);
                  }
                  if (run.cold()) {
                    return migration.cold.shuttingDown();
                  }
                  migration.bulkCopy.startDirectoryCopy();
                  return migration.bulkCopy.dirtyTracking();
                })
            .on(
                DestinationProtocol.Refused.class,
                refusal ->
                    migration.finish(
                        MigrationOutcome.ROLLED_BACK,
                        "refused by "
                            + run.destination
                            + ": "
                            + refusal.reason()
                            + "; nothing was changed"))
            .on(Cancel.class, m -> migration.cancelBeforeStart(m))
            .on(
                PhaseTimeout.class,
                m ->
                    migration.finish(
                        MigrationOutcome.ROLLED_BACK,
                        "no agent answered on "
                            + run.destination
                            + " within "
                            + services.settings().migration().timeouts().contact().toSeconds()
                            + " s; nothing was changed")));
  }

  void findDestinationAgent() {
    ctx.ask(
        Receptionist.Listing.class,
        ctx.getSystem().receptionist(),
        services.settings().migration().intervals().ask(),
        ref -> Receptionist.find(AgentProtocol.agentKey(run.destination), ref),
        (listing, err) ->
            new AgentListing(
                listing == null
                    ? Set.of()
                    : listing.getServiceInstances(AgentProtocol.agentKey(run.destination))));
  }
}
