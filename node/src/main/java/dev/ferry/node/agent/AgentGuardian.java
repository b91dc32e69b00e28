package dev.ferry.node.agent;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.destination.DestinationMigration;
import dev.ferry.node.migration.recovery.Recovery;
import dev.ferry.node.migration.source.SourceMigration;
import dev.ferry.node.validation.InvalidInputException;
import dev.ferry.node.validation.Names;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.Verification;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * The root of a node agent: registers this host with the Receptionist, starts one {@link
 * SourceMigration} per outgoing and one {@link DestinationMigration} per incoming migration,
 * answers for migrations that already ended from the journal, and on start-up reconciles the
 * journal with libvirt's truth ({@link Recovery}).
 *
 * <p>Every request is validated before anything is spawned: names against strict patterns, paths
 * confined to the datastores.
 */
public final class AgentGuardian {

  /** What the guardian handles: requests from other nodes, wrapped, and its own messages. */
  public sealed interface Message {}

  /** A request through the adapter registered with the Receptionist. */
  public record Request(AgentProtocol.Command command) implements Message {}

  private record Stopped(String migrationId, String vm) implements Message {}

  /**
   * Stop taking migrations and answer once none runs here (CoordinatedShutdown, on SIGTERM): a
   * migration that ends now ends at a point its journal describes, not in the middle of a copy.
   */
  public record FinishMigrations(ActorRef<org.apache.pekko.Done> replyTo) implements Message {}

  private record Inventory(
      HostInventory inventory, Throwable error, ActorRef<HostInventory> replyTo)
      implements Message {}

  public static Behavior<Message> create(HostPorts services) {
    return Behaviors.setup(
        ctx -> {
          String host = services.settings().host();
          ActorRef<AgentProtocol.Command> requests =
              ctx.messageAdapter(AgentProtocol.Command.class, Request::new);
          AgentStatus status = AgentStatus.get(ctx.getSystem());
          status.set(AgentStatus.State.RECOVERING);
          Recovery recovery = new Recovery(services, ctx.getLog(), ctx.getSystem());
          List<Manifest> unmerged = recovery.reconcile();
          List<Manifest> toMergeBack = recovery.toMergeBack();
          ctx.getSystem()
              .receptionist()
              .tell(Receptionist.register(AgentProtocol.agentKey(host), requests));
          ctx.getSystem()
              .receptionist()
              .tell(Receptionist.register(AgentProtocol.AGENTS, requests));
          AgentGuardian guardian = new AgentGuardian(ctx, services);
          for (Manifest m : unmerged) {
            ActorRef<DestinationMigration.Message> actor =
                ctx.spawn(
                    DestinationMigration.recover(m, services),
                    "incoming-" + m.migrationId(),
                    DispatcherSelector.sameAsParent());
            // snapshots stay refused until the merge is done, then allowed again
            ctx.watchWith(actor, new Stopped(m.migrationId(), m.vm()));
            guardian.incoming.put(m.migrationId(), actor);
            guardian.incomingVm.put(m.migrationId(), m.vm());
          }
          for (Manifest m : toMergeBack) {
            // the VM runs here on its temporary chain until this is done: no snapshots meanwhile
            ActorRef<?> actor =
                ctx.spawn(
                    Recovery.mergeBack(m, services),
                    "merge-back-" + m.migrationId(),
                    DispatcherSelector.sameAsParent());
            ctx.watchWith(actor, new Stopped(m.migrationId(), m.vm()));
            guardian.vmByMigration.put(m.migrationId(), m.vm());
          }
          status.set(AgentStatus.State.READY);
          return guardian.running();
        });
  }

  private final ActorContext<Message> ctx;
  private final HostPorts services;
  private final InventoryReader inventory;
  private final Map<String, ActorRef<SourceMigration.Command>> outgoing = new HashMap<>();
  private final Map<String, String> vmByMigration = new HashMap<>();
  private final Map<String, ActorRef<DestinationMigration.Message>> incoming = new HashMap<>();
  private final Map<String, String> incomingVm = new HashMap<>();

  /**
   * Watchers sent on to a running migration. One that ends right then may stop before it reads the
   * Watch (a dead letter); when it has stopped, they are answered from the journal.
   */
  private final Map<String, List<ActorRef<MigrationEvent>>> forwarded = new HashMap<>();

  private AgentGuardian(ActorContext<Message> ctx, HostPorts services) {
    this.ctx = ctx;
    this.services = services;
    this.inventory = new InventoryReader(services);
  }

  /** Who waits for the running migrations to end before the agent stops (empty: nobody). */
  private final List<ActorRef<org.apache.pekko.Done>> stopWaiters = new java.util.ArrayList<>();

  private boolean stopping() {
    return AgentStatus.get(ctx.getSystem()).state() == AgentStatus.State.STOPPING;
  }

  private void answerStopWaitersIfIdle() {
    if (outgoing.isEmpty() && incoming.isEmpty() && vmByMigration.isEmpty()) {
      stopWaiters.forEach(w -> w.tell(org.apache.pekko.Done.getInstance()));
      stopWaiters.clear();
    }
  }

  private Behavior<Message> running() {
    return Behaviors.receive(Message.class)
        .onMessage(Request.class, r -> onRequest(r.command()))
        .onMessage(
            FinishMigrations.class,
            m -> {
              AgentStatus.get(ctx.getSystem()).set(AgentStatus.State.STOPPING);
              ctx.getLog()
                  .info(
                      "stopping: no new migrations; waiting for {} running",
                      outgoing.size() + incoming.size());
              stopWaiters.add(m.replyTo());
              answerStopWaitersIfIdle();
              return Behaviors.same();
            })
        .onSignal(
            org.apache.pekko.actor.typed.PostStop.class,
            s -> {
              AgentStatus.get(ctx.getSystem()).set(AgentStatus.State.DOWN);
              return Behaviors.same();
            })
        .onMessage(
            Inventory.class,
            m -> {
              if (m.error() == null) {
                m.replyTo().tell(m.inventory());
              } else {
                ctx.getLog().warn("reading the inventory failed: {}", m.error().getMessage());
              }
              return Behaviors.same();
            })
        .onMessage(
            Stopped.class,
            m -> {
              outgoing.remove(m.migrationId());
              incoming.remove(m.migrationId());
              incomingVm.remove(m.migrationId());
              vmByMigration.remove(m.migrationId());
              List<ActorRef<MigrationEvent>> waiting = forwarded.remove(m.migrationId());
              if (waiting != null) {
                resultOf(m.migrationId())
                    .ifPresent(r -> waiting.forEach(w -> w.tell(new MigrationEvent.Finished(r))));
              }
              answerStopWaitersIfIdle();
              return Behaviors.same();
            })
        .build();
  }

  private Behavior<Message> onRequest(AgentProtocol.Command command) {
    if (command instanceof AgentProtocol.StartMigration m) {
      return onStart(m);
    } else if (command instanceof AgentProtocol.WatchMigration m) {
      return onWatch(m);
    } else if (command instanceof AgentProtocol.CancelMigration m) {
      return onCancel(m);
    } else if (command instanceof AgentProtocol.PrepareIncoming m) {
      return onIncoming(m);
    } else if (command instanceof AgentProtocol.GetInventory m) {
      return onInventory(m);
    } else if (command instanceof AgentProtocol.QueryIncoming m) {
      m.replyTo().tell(incomingStatus(m.migrationId()));
      return Behaviors.same();
    } else if (command instanceof AgentProtocol.CreateSnapshot m) {
      return onSnapshot(m);
    }
    throw new IllegalArgumentException("unknown agent command " + command);
  }

  private Behavior<Message> onStart(AgentProtocol.StartMigration m) {
    try {
      Names.id("migration id", m.migrationId());
      Names.vmName(m.vm());
      Names.hostName("destination", m.destination());
    } catch (InvalidInputException e) {
      m.replyTo().tell(new MigrationEvent.Rejected(m.migrationId(), e.getMessage()));
      return Behaviors.same();
    }
    // the journal first: a migration that just ended may still be in the map (its termination
    // not processed yet), and only the journal is sure to answer
    Optional<MigrationResult> ended = resultOf(m.migrationId());
    if (ended.isPresent()) {
      m.replyTo().tell(new MigrationEvent.Finished(ended.get()));
      return Behaviors.same();
    }
    ActorRef<SourceMigration.Command> running = outgoing.get(m.migrationId());
    if (running != null) {
      forward(m.migrationId(), running, m.replyTo()); // a retry of the same request
      return Behaviors.same();
    }
    if (m.destination().equals(services.settings().host())) {
      m.replyTo()
          .tell(
              new MigrationEvent.Rejected(
                  m.migrationId(), m.vm() + " already runs on " + m.destination()));
      return Behaviors.same();
    }
    Optional<String> other =
        vmByMigration.entrySet().stream()
            .filter(e -> e.getValue().equals(m.vm()))
            .map(Map.Entry::getKey)
            .findFirst();
    if (other.isPresent()) {
      m.replyTo()
          .tell(
              new MigrationEvent.Rejected(
                  m.migrationId(), m.vm() + " is already being migrated (" + other.get() + ")"));
      return Behaviors.same();
    }
    if (stopping()) {
      m.replyTo()
          .tell(
              new MigrationEvent.Rejected(
                  m.migrationId(),
                  "the agent on " + services.settings().host() + " is stopping; try again later"));
      return Behaviors.same();
    }
    ActorRef<SourceMigration.Command> actor =
        ctx.spawn(
            SourceMigration.create(
                m.migrationId(), m.vm(), m.destination(), m.options(), m.replyTo(), services),
            "migration-" + m.migrationId(),
            DispatcherSelector.sameAsParent());
    ctx.watchWith(actor, new Stopped(m.migrationId(), m.vm()));
    outgoing.put(m.migrationId(), actor);
    vmByMigration.put(m.migrationId(), m.vm());
    return Behaviors.same();
  }

  private Behavior<Message> onWatch(AgentProtocol.WatchMigration m) {
    Optional<MigrationResult> ended = resultOf(m.migrationId());
    ActorRef<SourceMigration.Command> running = outgoing.get(m.migrationId());
    if (ended.isPresent()) {
      m.replyTo().tell(new MigrationEvent.Finished(ended.get()));
    } else if (running != null) {
      forward(m.migrationId(), running, m.replyTo());
    } else {
      m.replyTo()
          .tell(
              new MigrationEvent.Unknown(
                  m.migrationId(),
                  "no migration " + m.migrationId() + " from " + services.settings().host()));
    }
    return Behaviors.same();
  }

  private Behavior<Message> onCancel(AgentProtocol.CancelMigration m) {
    ActorRef<SourceMigration.Command> running = outgoing.get(m.migrationId());
    if (running == null) {
      String why =
          resultOf(m.migrationId())
              .map(r -> "it already ended: " + r.outcome())
              .orElse("no such migration from " + services.settings().host());
      m.replyTo().tell(new AgentProtocol.CancelReply(m.migrationId(), false, why));
    } else {
      running.tell(new SourceMigration.Cancel(m.reason(), m.replyTo()));
    }
    return Behaviors.same();
  }

  private Behavior<Message> onIncoming(AgentProtocol.PrepareIncoming m) {
    Manifest manifest = m.manifest();
    try {
      Names.id("migration id", manifest.migrationId());
      Names.vmName(manifest.vm());
      Names.hostName("source", manifest.sourceHost());
      for (ManifestDisk d : manifest.disks()) {
        services.datastores().confine("disk " + d.target(), d.path());
        for (String b : d.backingChain()) {
          services.datastores().confine("backing file", b);
        }
      }
      for (String dir : manifest.directories()) {
        services.datastores().confine("directory", dir);
      }
      for (String file : manifest.files()) {
        services.datastores().confine("file", file);
      }
    } catch (InvalidInputException e) {
      m.replyTo().tell(new DestinationProtocol.Refused(manifest.migrationId(), e.getMessage()));
      return Behaviors.same();
    }
    if (stopping()) {
      m.replyTo()
          .tell(
              new DestinationProtocol.Refused(
                  manifest.migrationId(),
                  "the agent on " + services.settings().host() + " is stopping"));
      return Behaviors.same();
    }
    if (incoming.containsKey(manifest.migrationId())) {
      m.replyTo()
          .tell(
              new DestinationProtocol.Refused(
                  manifest.migrationId(), "already receiving " + manifest.migrationId()));
      return Behaviors.same();
    }
    ActorRef<DestinationMigration.Message> actor =
        ctx.spawn(
            DestinationMigration.create(manifest, m.options(), m.replyTo(), services),
            "incoming-" + manifest.migrationId(),
            DispatcherSelector.sameAsParent());
    ctx.watchWith(actor, new Stopped(manifest.migrationId(), manifest.vm()));
    incoming.put(manifest.migrationId(), actor);
    // until this actor stops (merge done, or aborted) the VM may be on its temporary chain here
    incomingVm.put(manifest.migrationId(), manifest.vm());
    return Behaviors.same();
  }

  private Behavior<Message> onInventory(AgentProtocol.GetInventory m) {
    ctx.pipeToSelf(
        CompletableFuture.supplyAsync(inventory::read, services.blocking()),
        (inv, err) -> new Inventory(inv, err, m.replyTo()));
    return Behaviors.same();
  }

  /** An incoming migration's state, from this host's journal (see {@link Recovery}). */
  private AgentProtocol.IncomingStatus incomingStatus(String id) {
    List<JournalEntry> entries = services.journal().read(id, MigrationJournal.Role.TARGET);
    if (entries.isEmpty()) {
      return new AgentProtocol.IncomingStatus(
          id,
          "unknown",
          Verification.none(),
          0,
          "no incoming migration " + id + " on " + services.settings().host());
    }
    long resumedAt =
        steps(entries, JournalEntry.Incoming.RESUMED)
            .mapToLong(JournalEntry::atMillis)
            .findFirst()
            .orElse(0);
    Optional<JournalEntry.IncomingStep> verified =
        steps(entries, JournalEntry.Incoming.VERIFIED).findFirst();
    if (verified.isPresent()) {
      List<String> details =
          verified.get().detail() == null
              ? List.of()
              : List.of(verified.get().detail().split("; "));
      return new AgentProtocol.IncomingStatus(
          id,
          "merged",
          new Verification(true, true, true, true, details),
          resumedAt,
          "verified on " + services.settings().host());
    }
    JournalEntry last = entries.get(entries.size() - 1);
    if (last instanceof JournalEntry.IncomingEnded e
        && e.end() == JournalEntry.IncomingEnd.ABORTED) {
      return new AgentProtocol.IncomingStatus(
          id, "aborted", Verification.none(), resumedAt, String.valueOf(e.detail()));
    }
    String step =
        last instanceof JournalEntry.IncomingStep s
            ? s.step().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-')
            : last.getClass().getSimpleName();
    return new AgentProtocol.IncomingStatus(
        id, "in-progress", Verification.none(), resumedAt, step);
  }

  private static java.util.stream.Stream<JournalEntry.IncomingStep> steps(
      List<JournalEntry> entries, JournalEntry.Incoming step) {
    return entries.stream()
        .filter(e -> e instanceof JournalEntry.IncomingStep s && s.step() == step)
        .map(JournalEntry.IncomingStep.class::cast);
  }

  /**
   * Snapshots are refused while the VM is migrating, on either host: with the overlay strategy a
   * snapshot taken on the temporary chain lands in the overlay and is lost at the merge, and a
   * later revert breaks the domain's definition (docs/overlay.md, O2).
   */
  private Behavior<Message> onSnapshot(AgentProtocol.CreateSnapshot m) {
    try {
      Names.vmName(m.vm());
      Names.snapshotName(m.name());
    } catch (InvalidInputException e) {
      m.replyTo().tell(new AgentProtocol.SnapshotReply(m.vm(), m.name(), false, e.getMessage()));
      return Behaviors.same();
    }
    if (vmByMigration.containsValue(m.vm()) || incomingVm.containsValue(m.vm())) {
      m.replyTo()
          .tell(
              new AgentProtocol.SnapshotReply(
                  m.vm(),
                  m.name(),
                  false,
                  "refused: " + m.vm() + " is being migrated; take snapshots before or after"));
      return Behaviors.same();
    }
    CompletableFuture.runAsync(
            () ->
                services
                    .hypervisor()
                    .createSnapshot(
                        m.vm(), "<domainsnapshot><name>" + m.name() + "</name></domainsnapshot>"),
            services.blocking())
        .whenComplete(
            (ok, err) ->
                m.replyTo()
                    .tell(
                        new AgentProtocol.SnapshotReply(
                            m.vm(),
                            m.name(),
                            err == null,
                            err == null
                                ? "created"
                                : dev.ferry.node.migration.MigrationFailure.reason(err))));
    return Behaviors.same();
  }

  private void forward(
      String migrationId,
      ActorRef<SourceMigration.Command> running,
      ActorRef<MigrationEvent> watcher) {
    running.tell(new SourceMigration.Watch(watcher));
    forwarded.computeIfAbsent(migrationId, k -> new java.util.ArrayList<>()).add(watcher);
  }

  private Optional<MigrationResult> resultOf(String migrationId) {
    return services.journal().read(migrationId, MigrationJournal.Role.SOURCE).stream()
        .filter(JournalEntry.Finished.class::isInstance)
        .map(e -> ((JournalEntry.Finished) e).result())
        .filter(r -> r != null)
        .reduce((a, b) -> b);
  }
}
