package dev.ferry.node.migration.destination;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.JournalEntry.Incoming;
import dev.ferry.node.journal.JournalEntry.IncomingEnd;
import dev.ferry.node.journal.JournalException;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.migration.Blocking;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.MigrationBehaviors;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.StateBuilder;
import dev.ferry.node.migration.destination.DestinationMessage.Adopted;
import dev.ferry.node.migration.destination.DestinationMessage.CleanedUp;
import dev.ferry.node.migration.destination.DestinationMessage.IdleTimeout;
import dev.ferry.node.migration.destination.DestinationMessage.Lifecycle;
import dev.ferry.node.migration.destination.DestinationMessage.Prepared;
import dev.ferry.node.migration.destination.DestinationMessage.Recovered;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.Verification;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The destination's side of one incoming migration. It prepares the VM directories, watches the
 * incoming memory migration, tells the source when the VM is paused here after libvirt's Finish
 * phase, and after the final sync proves the files against the manifest before resuming: only a VM
 * whose files passed is ever resumed here. This class is the coordinator: it prepares, routes the
 * source's commands while waiting, aborts, and ends in {@link #running}; the flows are {@link
 * IncomingSwitchover} (armed, paused, verifying, migrating back), {@link IncomingOverlay} (copies
 * checked, overlays, merge, recovery of a merge) and {@link IncomingCold} (boot); {@link
 * DestinationVerification} holds the checks themselves.
 *
 * <pre>
 * state          on                                   next
 * preparing      prepared / refused                   waiting (Ready) | stopped (Refused)
 * waiting        ArmSwitchover                        armed
 * armed          lifecycle SUSPENDED/PAUSED, paused   paused (DestinationPaused)
 * paused         FinalSynced                          verifying
 * verifying      files, metadata, resume, inode ok    running (Resumed)
 *                files or metadata differ             paused (VerificationFailed)
 * paused         MigrateBack                          migratingBack -> stopped (MigratedBack)
 * running        Release                              stopped (marker dropped: the VM lives here)
 * waiting|armed  Abort, or idle past the timeout      aborting -> stopped (Aborted)
 * </pre>
 */
public final class DestinationMigration extends DestinationParts {

  /** What the actor handles: commands from the source, wrapped, and its own messages. */
  public sealed interface Message permits Remote, DestinationMessage {}

  /** A command from the source, through the adapter the source knows as this target. */
  public record Remote(DestinationProtocol.Command command) implements Message {}

  private static final StateBuilder<Message> NO_HANDLERS =
      StateBuilder.receive(Message.class)
          .carrying(Remote.class, DestinationProtocol.Command.class, Remote::command);

  /** A new state's handlers: the source's commands by their own types. */
  StateBuilder<Message> state() {
    return NO_HANDLERS;
  }

  final AtomicReference<AutoCloseable> subscription = new AtomicReference<>();

  final IncomingSwitchover switchover;
  final IncomingOverlay overlay;
  final IncomingCold cold;

  /** Snapshot metadata redefined while the source syncs the files (see armed()). */
  CompletableFuture<Verification> earlyRedefine;

  /** Started by Recovery to finish a merge; nobody waits on our replies. */
  boolean recovery;

  /** The exact check of the copies (overlay and cold strategies), once VerifyCopies passed. */
  Verification copiesVerified;

  /** FinalSynced or MigrateBack that arrived before this actor saw the VM paused here. */
  DestinationProtocol.Command pendingFromSource;

  /** When libvirt resumed the VM here (overlay strategy), from the lifecycle event. */
  long resumedAt;

  private DestinationMigration(
      ActorContext<Message> ctx,
      TimerScheduler<Message> timers,
      Manifest manifest,
      ActorRef<DestinationProtocol.Reply> source,
      HostPorts services) {
    super(ctx, timers, manifest, source, services);
    this.switchover = new IncomingSwitchover(this);
    this.overlay = new IncomingOverlay(this);
    this.cold = new IncomingCold(this);
  }

  /**
   * Journals a step. The destination never acts on its own after the switchover and its records
   * serve its recovery only, so a journal that cannot be written is logged, not fatal; {@link
   * #preparing} refuses a migration whose first record cannot be written.
   */
  boolean journal(Incoming step, String detail) {
    return append(new JournalEntry.IncomingStep(step, detail));
  }

  /** Journals how the migration ended here. */
  void ended(IncomingEnd end, String detail) {
    append(new JournalEntry.IncomingEnded(end, detail));
  }

  private boolean append(JournalEntry entry) {
    try {
      journal.append(manifest.migrationId(), MigrationJournal.Role.TARGET, entry);
      return true;
    } catch (JournalException e) {
      ctx.getLog()
          .error(
              "{}: the journal cannot be written: {}", manifest.vm(), MigrationFailure.reason(e));
      return false;
    }
  }

  /** Preflight here: no such domain, directories free (or our own leftovers), space, memory. */
  Behavior<Message> preparing() {
    ctx.getLog()
        .info(
            "{}: incoming migration from {} ({} disks)",
            manifest.vm(),
            manifest.sourceHost(),
            manifest.disks().size());
    if (!append(new JournalEntry.Started(manifest, null))) {
      String reason = "the journal on " + services.settings().host() + " cannot be written";
      source.tell(new DestinationProtocol.Refused(manifest.migrationId(), reason));
      return Behaviors.stopped();
    }
    act(() -> host.prepare(manifest), Prepared::new);
    return state()
        .on(
            Prepared.class,
            m -> {
              if (m.failed()) {
                String reason = MigrationFailure.reason(m.error());
                ctx.getLog().info("{}: refusing the incoming migration: {}", manifest.vm(), reason);
                ended(IncomingEnd.REFUSED, reason);
                source.tell(new DestinationProtocol.Refused(manifest.migrationId(), reason));
                return Behaviors.stopped();
              }
              journal(Incoming.PREPARED, String.join(",", manifest.directories()));
              source.tell(
                  new DestinationProtocol.Ready(
                      manifest.migrationId(),
                      ctx.messageAdapter(DestinationProtocol.Command.class, this::checked)));
              return waiting();
            })
        .build();
  }

  /**
   * The source copies files into our directories; nothing for us to do but wait. If the source goes
   * silent for longer than the copy could take, we clean up: no domain was created here.
   */
  Behavior<Message> waiting() {
    var t = services.settings().migration().timeouts();
    timers.startSingleTimer(
        IdleTimeout.class,
        new IdleTimeout(),
        t.copy(manifest.totalBytes())
            .plus(t.memory(manifest.memoryKiB() * 1024))
            .plus(t.shutdown()));
    return beforeSwitchover(
        state()
            .on(
                DestinationProtocol.ArmSwitchover.class,
                m -> {
                  subscribe();
                  journal(Incoming.ARMED, null);
                  m.replyTo().tell(new DestinationProtocol.Armed());
                  return switchover.armed();
                })
            .on(
                DestinationProtocol.VerifyCopies.class,
                verifyCopies -> overlay.verifyingCopies(verifyCopies.replyTo()))
            .on(
                DestinationProtocol.CreateOverlays.class,
                m -> {
                  return overlay.creatingOverlays(m.overlays(), m.replyTo());
                })
            .on(
                DestinationProtocol.StartCold.class,
                m -> {
                  return cold.startingCold(m.domainXml(), m.replyTo());
                }));
  }

  /** Messages that end a migration before the switchover. */
  Behavior<Message> beforeSwitchover(StateBuilder<Message> state) {
    return state
        .on(
            DestinationProtocol.Abort.class,
            m -> {
              return aborting(m.reason(), m.replyTo());
            })
        .on(
            DestinationProtocol.Release.class,
            m -> {
              return aborting("released: " + m.outcome(), null);
            })
        .on(
            IdleTimeout.class,
            m ->
                aborting(
                    "no word from the source on " + manifest.sourceHost() + " for too long", null))
        .build();
  }

  /** The VM runs here; when the source releases us, the directories become the VM's own. */
  Behavior<Message> running() {
    ctx.getLog().info("{}: verified and running here", manifest.vm());
    return state()
        .on(Recovered.class, m -> recovery, m -> overlay.finishRecovery(m.reply()))
        .on(
            DestinationProtocol.Release.class,
            m -> {
              return adopting(m.outcome());
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /**
   * A command from the source, checked first (PeerCommands). A refused one is answered here, on the
   * actor's thread, and reaches no state: every state ignores {@link RefusedCommand}.
   */
  private Message checked(DestinationProtocol.Command command) {
    var refusal = PeerCommands.refusal(manifest, command);
    if (refusal.isEmpty()) {
      return new Remote(command);
    }
    ctx.getLog().error("{}: refused a command from the source: {}", manifest.vm(), refusal.get());
    replyTo(command)
        .ifPresent(r -> r.tell(new DestinationProtocol.Failed("refused: " + refusal.get())));
    return new DestinationMessage.RefusedCommand(refusal.get());
  }

  private static java.util.Optional<ActorRef<DestinationProtocol.Reply>> replyTo(
      DestinationProtocol.Command c) {
    if (c instanceof DestinationProtocol.CreateOverlays x) {
      return java.util.Optional.of(x.replyTo());
    }
    if (c instanceof DestinationProtocol.MergeOverlays x) {
      return java.util.Optional.of(x.replyTo());
    }
    if (c instanceof DestinationProtocol.StartCold x) {
      return java.util.Optional.of(x.replyTo());
    }
    if (c instanceof DestinationProtocol.MigrateBack x) {
      return java.util.Optional.of(x.replyTo());
    }
    if (c instanceof DestinationProtocol.FinalSynced x) {
      return java.util.Optional.of(x.replyTo());
    }
    return java.util.Optional.empty();
  }

  /** The VM lives here for good: its directories become its own, and this migration ends. */
  Behavior<Message> adopting(String detail) {
    act(() -> host.adopt(manifest), Adopted::new);
    return state()
        .on(
            Adopted.class,
            s -> {
              ended(IncomingEnd.RUNNING, detail);
              return Behaviors.stopped();
            })
        .onAnyMessage(x -> Behaviors.same())
        .build();
  }

  /**
   * Waits for the result of a blocking step the source asked for, before the switchover; an Abort
   * from the source meanwhile wins.
   */
  <T extends DestinationMessage.Step> Behavior<Message> awaiting(
      Class<T> result, java.util.function.Function<T, Behavior<Message>> onResult) {
    return state()
        .on(result, onResult::apply)
        .on(
            DestinationProtocol.Abort.class,
            a -> {
              return aborting(a.reason(), a.replyTo());
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Removes what this migration created here and stops. */
  Behavior<Message> aborting(String reason, ActorRef<DestinationProtocol.Reply> replyTo) {
    ctx.getLog().info("{}: aborting the incoming migration: {}", manifest.vm(), reason);
    journal(Incoming.ABORTING, reason);
    blocking(() -> host.cleanup(manifest), CleanedUp::new);
    return state()
        .on(
            CleanedUp.class,
            m -> {
              if (m.failed()) {
                String why = MigrationFailure.reason(m.error());
                if (replyTo != null) {
                  replyTo.tell(new DestinationProtocol.Failed(why));
                }
                ended(IncomingEnd.ABORT_FAILED, why);
                return Behaviors.stopped();
              }
              List<String> removed = m.removed();
              if (replyTo != null) {
                replyTo.tell(new DestinationProtocol.Aborted(removed));
              }
              ended(IncomingEnd.ABORTED, reason);
              return Behaviors.stopped();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  DomainState safeState() {
    try {
      return host.state(manifest.vm());
    } catch (RuntimeException e) {
      return DomainState.NOSTATE;
    }
  }

  void subscribe() {
    String vm = manifest.vm();
    ActorRef<Message> self = ctx.getSelf();
    subscription.set(
        services
            .hypervisor()
            .subscribe(
                e -> {
                  if (e.domain().equals(vm)) {
                    self.tell(new Lifecycle(e));
                  }
                }));
  }

  /** Runs a blocking step on the blocking dispatcher; its typed result comes back as a message. */
  /** Runs a blocking step that only acts; its error (or null) comes back as a message. */
  void act(
      Blocking.Act act,
      java.util.function.Function<Throwable, ? extends DestinationMessage.Step> result) {
    Blocking.pipe(ctx, services.blocking(), act, result);
  }

  <T> void blocking(
      Blocking.Work<T> work,
      BiFunction<? super T, Throwable, ? extends DestinationMessage.Step> result) {
    Blocking.pipe(ctx, services.blocking(), work, result);
  }

  static Duration idle(HostPorts services, Manifest manifest) {
    var t = services.settings().migration().timeouts();
    return t.copy(manifest.totalBytes()).plus(t.memory(manifest.memoryKiB() * 1024));
  }

  /**
   * After a restart of this agent: the VM of an overlay migration runs here but its merge never
   * finished. Finish it from the journaled manifest (the overlay paths follow from it), prove the
   * result, and record it: the source's agent, waiting, reads it with QueryIncoming.
   */
  public static Behavior<Message> recover(Manifest manifest, HostPorts services) {
    return withContext(
        manifest,
        (ctx, timers) -> {
          DestinationMigration actor =
              new DestinationMigration(
                  ctx, timers, manifest, ctx.getSystem().ignoreRef(), services);
          actor.recovery = true;
          ctx.getLog()
              .info(
                  "{}: finishing the merge of an overlay migration after a restart", manifest.vm());
          actor.subscribe();
          return MigrationBehaviors.closeOnStop(
              actor.overlay.merging(
                  OverlayOps.plan(manifest),
                  ctx.messageAdapter(DestinationProtocol.Reply.class, Recovered::new)),
              actor.subscription);
        });
  }

  public static Behavior<Message> create(
      Manifest manifest,
      MigrationOptions options,
      ActorRef<DestinationProtocol.Reply> source,
      HostPorts services) {
    return withContext(
        manifest,
        (ctx, timers) -> {
          DestinationMigration actor =
              new DestinationMigration(ctx, timers, manifest, source, services);
          return MigrationBehaviors.closeOnStop(actor.preparing(), actor.subscription);
        });
  }

  /** Both ways in: the migration's MDC, its logger name, a context and timers. */
  private static Behavior<Message> withContext(
      Manifest manifest,
      BiFunction<ActorContext<Message>, TimerScheduler<Message>, Behavior<Message>> start) {
    return MigrationBehaviors.withMigrationMdc(
        Message.class,
        manifest.migrationId(),
        manifest.vm(),
        Behaviors.setup(
            ctx ->
                Behaviors.withTimers(
                    timers -> {
                      ctx.setLoggerName("dev.ferry.migration.destination");
                      return start.apply(ctx, timers);
                    })));
  }
}
