package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.DiskSyncActor;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.JournalException;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.metrics.EngineMetrics;
import dev.ferry.node.migration.Blocking;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.MigrationBehaviors;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.StateBuilder;
import dev.ferry.node.migration.source.SourceMessage.DirectoryCopied;
import dev.ferry.node.migration.source.SourceMessage.Disk;
import dev.ferry.node.migration.source.SourceMessage.DiskStopped;
import dev.ferry.node.migration.source.SourceMessage.FromTarget;
import dev.ferry.node.migration.source.SourceMessage.JobPolled;
import dev.ferry.node.migration.source.SourceMessage.MemoryDone;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMessage.PollJob;
import dev.ferry.node.migration.source.SourceMessage.SourceEvent;
import dev.ferry.node.migration.source.SourceMessage.TargetGone;
import dev.ferry.node.migration.source.SourceMessage.Tick;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.DiskProgress;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiFunction;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * Migrates one VM from this host: one actor per migrating VM, on the source host; the destination's
 * {@code DestinationMigration} prepares, watches the switchover, verifies and resumes. This class
 * is the coordinator: it owns the migration's facts ({@link SourceFacts}), the state table ({@link
 * SourceTransitions}, checked on every {@link #enter}), the handling every state shares (watchers,
 * progress, cancel, the destination's death) and the result. Each flow is one class whose methods
 * are its states:
 *
 * <ul>
 *   <li>{@link Preparation}: preflight (the manifest), contacting the destination's agent;
 *   <li>{@link BulkCopy}: dirty tracking, the VM directory and disk copies while the VM runs, the
 *       destination's check of quiescent copies;
 *   <li>{@link MemoryMigration}: snapshot metadata dropped, the switchover armed, libvirt's memory
 *       migration watched;
 *   <li>{@link SuspendSyncSwitchover}: final sync in place while paused, verification, retries;
 *   <li>{@link OverlaySwitchover}: temporary overlays, their merge on the destination;
 *   <li>{@link ColdMove}: ACPI shutdown, boot on the destination, undefine here;
 *   <li>{@link Acknowledge}: the result to the watchers, then the source's clean-up;
 *   <li>{@link Undo}: roll back before the switchover, migrate back after it.
 * </ul>
 *
 * Before the source pauses for the switchover, a cancel or any failure rolls back. Once it paused,
 * cancel is refused: the VM's memory is on its way and finishing is safer than undoing. The states
 * and their transitions are described in {@code docs/flows.md}.
 */
public final class SourceMigration extends SourceParts {

  /** Messages to a migration. */
  public sealed interface Command permits Watch, Cancel, SourceMessage {}

  /** Add a watcher; it gets the current progress at once. */
  public record Watch(ActorRef<MigrationEvent> watcher) implements Command {}

  public record Cancel(String reason, ActorRef<AgentProtocol.CancelReply> replyTo)
      implements Command {}

  public static Behavior<Command> create(
      String migrationId,
      String vm,
      String destination,
      MigrationOptions options,
      ActorRef<MigrationEvent> firstWatcher,
      HostPorts services) {
    return MigrationBehaviors.withMigrationMdc(
        Command.class,
        migrationId,
        vm,
        Behaviors.setup(
            ctx ->
                Behaviors.withTimers(
                    timers -> {
                      ctx.setLoggerName("dev.ferry.migration");
                      SourceFacts run = new SourceFacts(migrationId, vm, destination, options);
                      run.watchers.add(firstWatcher);
                      SourceMigration migration = new SourceMigration(ctx, timers, run, services);
                      return MigrationBehaviors.closeOnStop(
                          migration.preparation.preflight(), migration.lifecycleSubscription);
                    })));
  }

  final AtomicReference<AutoCloseable> lifecycleSubscription = new AtomicReference<>();

  final Preparation preparation;
  final BulkCopy bulkCopy;
  final MemoryMigration memory;
  final SuspendSyncSwitchover suspendSync;
  final OverlaySwitchover overlay;
  final ColdMove cold;
  final Acknowledge ack;
  final Undo undo;
  final PeerTakeover takeover;

  private SourceMigration(
      ActorContext<Command> ctx,
      TimerScheduler<Command> timers,
      SourceFacts run,
      HostPorts services) {
    super(ctx, timers, run, services);
    this.preparation = new Preparation(this);
    this.bulkCopy = new BulkCopy(this);
    this.memory = new MemoryMigration(this);
    this.suspendSync = new SuspendSyncSwitchover(this);
    this.overlay = new OverlaySwitchover(this);
    this.cold = new ColdMove(this);
    this.ack = new Acknowledge(this);
    this.undo = new Undo(this);
    this.takeover = new PeerTakeover(this);
    ctx.getLog()
        .info(
            "migration {} of {} to {} starting ({})", run.id, run.vm, run.destination, run.options);
    timers.startTimerAtFixedRate(
        Tick.class, new Tick(), services.settings().migration().progressInterval());
  }

  // ---------------------------------------------------------------- shared handling

  private static final StateBuilder<Command> NO_HANDLERS =
      StateBuilder.receive(Command.class)
          .carrying(FromTarget.class, DestinationProtocol.Reply.class, FromTarget::reply)
          .carrying(Disk.class, DiskSyncActor.Event.class, Disk::event);

  /** A new state's handlers: the destination's replies and disk events by their own types. */
  StateBuilder<Command> state() {
    return NO_HANDLERS;
  }

  /**
   * Adds the handlers every working state has (watchers, progress, disk progress, source events,
   * late replies) after the state's own, which therefore win.
   */
  Behavior<Command> withCommon(StateBuilder<Command> state) {
    return state
        .on(Watch.class, this::onWatch)
        .on(Tick.class, m -> publishTick())
        .on(
            DiskSyncActor.Progress.class,
            p -> {
              run.diskProgress.put(
                  p.target(),
                  new DiskProgress(
                      p.target(),
                      run.pathOf(p.target()),
                      p.method(),
                      p.bytesDone(),
                      p.bytesTotal()));
              return Behaviors.same();
            })
        .on(
            SourceEvent.class,
            m -> {
              LifecycleEvent e = m.event();
              if (e.is(LifecycleEvent.Type.SUSPENDED, "MIGRATED") && run.sourceSuspendedAt == 0) {
                run.sourceSuspendedAt = e.at().toEpochMilli();
                run.switchoverStarted = true;
              }
              return Behaviors.same();
            })
        .on(
            MemoryDone.class,
            m -> {
              memoryReturnedAfterSwitchover(m);
              return Behaviors.same();
            })
        .on(DiskStopped.class, m -> Behaviors.same())
        .on(
            DiskSyncActor.Armed.class,
            a -> {
              if (!a.note().equals("applier ready") && !a.note().equals("rsync needs no applier")) {
                run.note(a.target() + ": " + a.note());
              }
              return Behaviors.same();
            })
        .on(
            DirectoryCopied.class,
            m -> {
              bulkCopy.recordDirectoryCopy(m);
              return Behaviors.same();
            })
        .on(PollJob.class, m -> Behaviors.same())
        .on(JobPolled.class, m -> Behaviors.same())
        .on(TargetGone.class, m -> takeover.destinationStopped())
        .onAnyMessage(
            m -> {
              ctx.getLog().debug("{}: ignored in {}: {}", run.vm, run.phase, m);
              return Behaviors.same();
            })
        .build();
  }

  /**
   * A state that undoes or waits on libvirt: besides its own handlers it serves watchers and
   * progress, answers a cancel with {@code onCancel}, ends the migration failed with {@code
   * timedOut}'s message when the phase's time is up (unless null), and lets anything else wait.
   */
  Behavior<Command> waiting(
      StateBuilder<Command> state,
      Function<Cancel, Behavior<Command>> onCancel,
      Supplier<String> timedOut) {
    StateBuilder<Command> b =
        state
            .on(Watch.class, this::onWatch)
            .on(Cancel.class, onCancel::apply)
            .on(Tick.class, m -> publishTick());
    if (timedOut != null) {
      b = b.on(PhaseTimeout.class, m -> finish(MigrationOutcome.FAILED, timedOut.get()));
    }
    return b.onAnyMessage(m -> Behaviors.same()).build();
  }

  /**
   * The state of a blocking step before the switchover: {@code onDone} with its result; if the step
   * failed, or on a cancel or the phase's timeout, roll back, saying what was being done.
   */
  <S extends SourceMessage.Step> Behavior<Command> stepBeforeSwitchover(
      Class<S> result, String doing, Function<S, Behavior<Command>> onDone) {
    return withCommon(
        state()
            .on(
                result,
                m ->
                    m.failed()
                        ? undo.rollingBack(
                            MigrationOutcome.ROLLED_BACK,
                            doing + " failed: " + MigrationFailure.reason(m.error()))
                        : onDone.apply(m))
            .on(Cancel.class, this::cancelAndRollBack)
            .on(
                PhaseTimeout.class,
                m -> undo.rollingBack(MigrationOutcome.ROLLED_BACK, doing + " timed out")));
  }

  /**
   * The state of a request to the destination before the switchover: {@code onDone} with its answer
   * of type {@code answer}; its refusal ({@code Failed}, prefixed with {@code refused}), a cancel
   * or the phase's timeout roll back.
   */
  <R extends DestinationProtocol.Reply> Behavior<Command> askedBeforeSwitchover(
      Class<R> answer, String doing, String refused, Function<R, Behavior<Command>> onDone) {
    return withCommon(
        state()
            .on(
                FromTarget.class,
                m -> answer.isInstance(m.reply()),
                m -> onDone.apply(answer.cast(m.reply())))
            .on(
                DestinationProtocol.Failed.class,
                failed -> undo.rollingBack(MigrationOutcome.ROLLED_BACK, refused + failed.reason()))
            .on(Cancel.class, this::cancelAndRollBack)
            .on(
                PhaseTimeout.class,
                m -> undo.rollingBack(MigrationOutcome.ROLLED_BACK, doing + " timed out")));
  }

  Behavior<Command> onWatch(Watch m) {
    run.watchers.add(m.watcher());
    m.watcher().tell(new MigrationEvent.Progress(run.progress(services.settings().host(), "")));
    return Behaviors.same();
  }

  Behavior<Command> cancelBeforeStart(Cancel m) {
    m.replyTo()
        .tell(new AgentProtocol.CancelReply(run.id, true, "cancelled before anything was changed"));
    return finish(MigrationOutcome.CANCELLED, "cancelled: " + m.reason() + "; nothing was changed");
  }

  Behavior<Command> cancelAndRollBack(Cancel m) {
    m.replyTo().tell(new AgentProtocol.CancelReply(run.id, true, "rolling back"));
    return undo.rollingBack(MigrationOutcome.CANCELLED, "cancelled: " + m.reason());
  }

  Behavior<Command> refuseCancel(Cancel m) {
    m.replyTo()
        .tell(
            new AgentProtocol.CancelReply(
                run.id,
                false,
                "too late: the switchover happened; "
                    + run.vm
                    + " is being finished on "
                    + run.destination));
    return Behaviors.same();
  }

  Behavior<Command> refuseCancelRollingBack(Cancel m) {
    m.replyTo().tell(new AgentProtocol.CancelReply(run.id, true, "already rolling back"));
    return Behaviors.same();
  }

  /** Stops every disk actor once (each kills its processes). */
  void stopDisks() {
    run.disks.values().forEach(d -> d.tell(new DiskSyncActor.Stop()));
    run.disks.clear();
  }

  Behavior<Command> publishTick() {
    publish("");
    return Behaviors.same();
  }

  void publish(String message) {
    MigrationEvent.Progress p =
        new MigrationEvent.Progress(run.progress(services.settings().host(), message));
    run.watchers.forEach(w -> w.tell(p));
  }

  /**
   * Moves to {@code phase}: checks the move against {@link SourceTransitions}, arms the phase's
   * timeout, journals and publishes it. A move the table does not allow is a bug in a flow: it is
   * refused loudly rather than run on in a state nobody designed.
   */
  void enter(MigrationPhase phase, String message, Duration timeout) {
    SourceTransitions.check(run.phase, phase);
    run.phase = phase;
    timers.startSingleTimer(PhaseTimeout.class, new PhaseTimeout(phase), timeout);
    ctx.getLog().info("{} [{}] {}: {}", run.vm, run.id, phase, message);
    if (run.manifest != null) {
      record(new JournalEntry.PhaseEntered(phase, message));
    }
    publish(message);
  }

  /**
   * Appends to this migration's journal. When the journal cannot be written (disk full, I/O error)
   * the first failure is noted for the result and logged, and this returns false: a flow must then
   * not take the step the record announces ({@link #cannotJournal}). Later appends are still tried,
   * so a journal that recovers is used again.
   */
  boolean record(JournalEntry entry) {
    try {
      journal.append(run.id, MigrationJournal.Role.SOURCE, entry);
      return true;
    } catch (JournalException e) {
      if (run.journalError == null) {
        run.journalError = MigrationFailure.reason(e);
        ctx.getLog().error("{}: the journal cannot be written: {}", run.vm, run.journalError);
        run.note("the journal on " + services.settings().host() + " could not be written");
      }
      return false;
    }
  }

  /**
   * The step a flow was about to take needs a journal record that could not be written: without it
   * a restarted agent could not undo the step, so undo now instead (every caller is before the
   * switchover).
   */
  Behavior<Command> cannotJournal() {
    return undo.rollingBack(
        MigrationOutcome.ROLLED_BACK,
        journalUnwritable() + "; rolled back rather than go on without it");
  }

  /** Why the last journal append failed, for a result. */
  String journalUnwritable() {
    return "the journal on "
        + services.settings().host()
        + " cannot be written ("
        + run.journalError
        + ")";
  }

  /** Tells the watchers how the migration ended and counts it in this agent's metrics. */
  void announce(MigrationResult result) {
    EngineMetrics.get(ctx.getSystem()).finished(result);
    run.watchers.forEach(w -> w.tell(new MigrationEvent.Finished(result)));
  }

  /** Ends the migration: journals and announces its result, releases the destination, stops. */
  Behavior<Command> finish(MigrationOutcome outcome, String message) {
    String where =
        switch (outcome) {
          case COMPLETED -> run.destination;
          case ROLLED_BACK, CANCELLED, MIGRATED_BACK -> services.settings().host();
          case FAILED -> "";
        };
    return finish(outcome, where, message);
  }

  /** Ends the migration failed: what went wrong, then where the VM is now. */
  Behavior<Command> failWithWhereabouts(String what) {
    return finish(MigrationOutcome.FAILED, what + "; " + whereIsTheVm());
  }

  /** Ends the migration; {@code where} is the host the VM runs on (empty: not known for sure). */
  Behavior<Command> finish(MigrationOutcome outcome, String where, String message) {
    SourceTransitions.check(run.phase, MigrationPhase.FINISHED);
    run.phase = MigrationPhase.FINISHED;
    MigrationResult result = result(outcome, where, message);
    ctx.getLog().info("{} [{}] finished {}: {}", run.vm, run.id, outcome, message);
    if (run.manifest != null) {
      record(new JournalEntry.Finished(result));
    }
    announce(result);
    stopDisks();
    if (run.target != null) {
      run.target.tell(new DestinationProtocol.Release(outcome.name()));
    }
    return Behaviors.stopped();
  }

  MigrationResult result(MigrationOutcome outcome, String runningOn, String message) {
    return run.result(services.settings().host(), outcome, runningOn, message);
  }

  String whereIsTheVm() {
    return run.vm
        + " may be paused on "
        + run.destination
        + " while the files on "
        + services.settings().host()
        + " are authoritative: check both hosts before acting (journal "
        + run.id
        + ")";
  }

  /** Runs a blocking step on the blocking dispatcher; its typed result comes back as a message. */
  /** Runs a blocking step that only acts; its error (or null) comes back as a message. */
  void act(
      Blocking.Act act,
      java.util.function.Function<Throwable, ? extends SourceMessage.Step> result) {
    Blocking.pipe(ctx, services.blocking(), act, result);
  }

  /**
   * Runs {@code next} once libvirt's migration call has returned (at once if it has): until then
   * its confirm phase still holds this host's domain, and the domain on the destination is not
   * settled.
   */
  Behavior<Command> afterLibvirtReturned(String cause, Supplier<Behavior<Command>> next) {
    if (!run.memoryStarted || run.memoryReturned) {
      return next.get();
    }
    return waiting(
        state()
            .on(
                MemoryDone.class,
                m -> {
                  run.memoryReturned = true;
                  return next.get();
                }),
        this::refuseCancel,
        () -> cause + "; libvirt's migration call never returned; " + whereIsTheVm());
  }

  /** libvirt's migration call returned once the VM was on the destination; an error is a note. */
  void memoryReturnedAfterSwitchover(MemoryDone m) {
    run.memoryReturned = true;
    if (m.error() != null) {
      run.note("libvirt reported after the switchover: " + MigrationFailure.reason(m.error()));
    }
  }

  <T> void blocking(
      Blocking.Work<T> work,
      BiFunction<? super T, Throwable, ? extends SourceMessage.Step> result) {
    Blocking.pipe(ctx, services.blocking(), work, result);
  }

  void subscribeToSourceEvents() {
    String vm = run.vm;
    ActorRef<Command> self = ctx.getSelf();
    try {
      lifecycleSubscription.set(
          services
              .hypervisor()
              .subscribe(
                  e -> {
                    if (e.domain().equals(vm)) {
                      self.tell(new SourceEvent(e));
                    }
                  }));
    } catch (RuntimeException e) {
      ctx.getLog()
          .warn(
              "{}: no lifecycle events ({}); the paused window will not be measured",
              vm,
              e.getMessage());
    }
  }

  Duration copyTimeout(long bytes) {
    return services.settings().migration().timeouts().copy(bytes);
  }
}
