package dev.ferry.node.scheduler;

import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationProgress;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.SchedulerProtocol;
import dev.ferry.protocol.SchedulerProtocol.ErrorKind;
import dev.ferry.protocol.SchedulerProtocol.JobReply;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.RebalancePlan;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.LongSupplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.ClusterSingletonSettings;
import org.apache.pekko.cluster.typed.SingletonActor;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.SnapshotAdapter;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * The cluster's one scheduler: every migration users ask for (driver requests, drains, rebalancing)
 * is queued here and started when {@link Admission} allows it. Event-sourced, so the queue, the
 * running jobs with their slots, the drains and the idempotency keys survive a crash and a
 * failover; progress and host inventories are not journaled (they are re-read within seconds).
 *
 * <p>Runs as a Cluster Singleton ({@link #init}); the singleton is a thin forwarder in front of the
 * event-sourced core, so a journal failure restarts the core with backoff while the singleton (and
 * its address) stays.
 */
public final class Scheduler {
  private Scheduler() {}

  /** What the event-sourced core receives: the public protocol plus its own messages. */
  sealed interface Message {}

  record Api(SchedulerProtocol.Command command) implements Message {}

  private enum Admit implements Message {
    INSTANCE
  }

  private enum Tick implements Message {
    INSTANCE
  }

  private record AgentsListed(Set<ActorRef<AgentProtocol.Command>> agents) implements Message {}

  private record InventoryRead(HostInventory inventory) implements Message {}

  private enum Ignored implements Message {
    INSTANCE
  }

  record JobProgress(String id, MigrationProgress progress) implements Message {}

  record JobFinished(String id, JobState state, MigrationResult result, String message)
      implements Message {}

  /** A running job's agent answered a cancel; {@code token} is the caller to reply to. */
  record Cancelled(String id, boolean accepted, String message, Object token) implements Message {}

  /** Starts the singleton on every member (with the configured role) and returns its proxy. */
  public static ActorRef<SchedulerProtocol.Command> init(
      ActorSystem<?> system, SchedulerSettings settings) {
    ClusterSingletonSettings singleton = ClusterSingletonSettings.create(system);
    if (!settings.role().isEmpty()) {
      singleton = singleton.withRole(settings.role());
    }
    return ClusterSingleton.get(system)
        .init(
            SingletonActor.of(create(settings, System::currentTimeMillis), "ferry-scheduler")
                .withSettings(singleton));
  }

  /** The scheduler behaviour (tests run it without a singleton). */
  public static Behavior<SchedulerProtocol.Command> create(
      SchedulerSettings settings, LongSupplier clock) {
    return create(settings, clock, PERSISTENCE_ID);
  }

  /** The same under another persistence id, so that tests share one journal. */
  static Behavior<SchedulerProtocol.Command> create(
      SchedulerSettings settings, LongSupplier clock, PersistenceId persistenceId) {
    return Behaviors.setup(
        ctx -> {
          Behavior<Message> core =
              Behaviors.supervise(
                      Behaviors.<Message>setup(
                          c ->
                              Behaviors.withTimers(
                                  timers -> new Core(c, timers, settings, clock, persistenceId))))
                  .onFailure(
                      SupervisorStrategy.restartWithBackoff(
                          Duration.ofSeconds(1), Duration.ofSeconds(30), 0.2));
          ActorRef<Message> ref = ctx.spawn(core, "core");
          return Behaviors.receive(SchedulerProtocol.Command.class)
              .onAnyMessage(
                  cmd -> {
                    ref.tell(new Api(cmd));
                    return Behaviors.same();
                  })
              .build();
        });
  }

  /** A random id: unique across journals, so an agent never confuses a new job with an old one. */
  static final PersistenceId PERSISTENCE_ID = PersistenceId.ofUniqueId("ferry-scheduler");

  /** How long a runner waits for its agent to say anything before asking again. */
  static final Duration RESEND = Duration.ofSeconds(10);

  static final class Core extends EventSourcedBehavior<Message, SchedulerEvent, SchedulerState> {
    private final ActorContext<Message> ctx;
    private final TimerScheduler<Message> timers;
    private final SchedulerSettings settings;
    private final LongSupplier clock;

    // not journaled: rebuilt within an inventory interval after a start or failover
    private final KnownHosts known;
    private final Map<String, ActorRef<JobRunner.Command>> runners = new HashMap<>();
    private final Map<String, MigrationProgress> progress = new HashMap<>();
    private Map<String, String> waiting = Map.of();

    Core(
        ActorContext<Message> ctx,
        TimerScheduler<Message> timers,
        SchedulerSettings settings,
        LongSupplier clock,
        PersistenceId persistenceId) {
      super(
          persistenceId,
          SupervisorStrategy.restartWithBackoff(
              Duration.ofSeconds(1), Duration.ofSeconds(30), 0.2));
      this.ctx = ctx;
      this.timers = timers;
      this.settings = settings;
      this.clock = clock;
      this.known = new KnownHosts(settings, clock);
    }

    @Override
    public SchedulerState emptyState() {
      return new SchedulerState(settings.history());
    }

    @Override
    public RetentionCriteria retentionCriteria() {
      return RetentionCriteria.snapshotEvery(settings.snapshotEvery(), 2);
    }

    @Override
    public SnapshotAdapter<SchedulerState> snapshotAdapter() {
      return new SnapshotAdapter<>() {
        @Override
        public Object toJournal(SchedulerState state) {
          return state.snapshot();
        }

        @Override
        public SchedulerState fromJournal(Object from) {
          return SchedulerState.of((SchedulerState.Snapshot) from, settings.history());
        }
      };
    }

    @Override
    public EventHandler<SchedulerState, SchedulerEvent> eventHandler() {
      return (state, event) -> {
        state.apply(event);
        return state;
      };
    }

    @Override
    public SignalHandler<SchedulerState> signalHandler() {
      return newSignalHandlerBuilder()
          .onSignal(
              RecoveryCompleted.instance(),
              state -> {
                ctx.getLog()
                    .info(
                        "scheduler recovered: {} running, {} queued",
                        state.running().size(),
                        state.queue().size());
                state.running().forEach(this::spawnRunner);
                timers.startTimerWithFixedDelay(Tick.INSTANCE, settings.inventoryInterval());
                ctx.getSelf().tell(Tick.INSTANCE);
              })
          .build();
    }

    @Override
    public CommandHandler<Message, SchedulerEvent, SchedulerState> commandHandler() {
      return newCommandHandlerBuilder()
          .forAnyState()
          .onCommand(Api.class, (s, m) -> onApi(s, m.command()))
          .onCommand(Admit.class, (s, m) -> onAdmit(s))
          .onCommand(Tick.class, (s, m) -> onTick(s))
          .onCommand(AgentsListed.class, (s, m) -> onAgentsListed(m))
          .onCommand(InventoryRead.class, (s, m) -> onInventory(m))
          .onCommand(Ignored.class, (s, m) -> Effect().none())
          .onCommand(JobProgress.class, (s, m) -> onProgress(s, m))
          .onCommand(JobFinished.class, this::onFinished)
          .onCommand(Cancelled.class, this::onCancelled)
          .build();
    }

    private Effect<SchedulerEvent, SchedulerState> onApi(
        SchedulerState s, SchedulerProtocol.Command c) {
      if (c instanceof SchedulerProtocol.Submit m) {
        return onSubmit(s, m);
      }
      if (c instanceof SchedulerProtocol.GetJob m) {
        m.replyTo()
            .tell(
                s.job(m.id())
                    .map(j -> JobReply.of(view(j)))
                    .orElse(JobReply.error(ErrorKind.NOT_FOUND, "no migration " + m.id())));
        return Effect().none();
      }
      if (c instanceof SchedulerProtocol.ListJobs m) {
        List<SchedulerProtocol.JobView> jobs = new ArrayList<>();
        s.active().stream()
            .sorted(Comparator.comparingLong(Job::seq))
            .forEach(j -> jobs.add(view(j)));
        if (!m.activeOnly()) {
          List<Job> done = new ArrayList<>(s.finished());
          for (int i = done.size() - 1; i >= 0 && i >= done.size() - m.limit(); i--) {
            jobs.add(view(done.get(i)));
          }
        }
        m.replyTo().tell(new SchedulerProtocol.JobsReply(jobs));
        return Effect().none();
      }
      if (c instanceof SchedulerProtocol.CancelJob m) {
        return onCancelJob(s, m);
      }
      if (c instanceof SchedulerProtocol.GetHosts m) {
        m.replyTo().tell(hosts(s));
        return Effect().none();
      }
      if (c instanceof SchedulerProtocol.GetVm m) {
        m.replyTo().tell(known.whereIs(m.vm()));
        return Effect().none();
      }
      if (c instanceof SchedulerProtocol.EnableHost m) {
        return onEnableHost(s, m);
      }
      if (c instanceof SchedulerProtocol.StartDrain m) {
        return onStartDrain(s, m);
      }
      if (c instanceof SchedulerProtocol.GetDrain m) {
        m.replyTo()
            .tell(
                s.drain(m.id())
                    .map(d -> SchedulerProtocol.DrainReply.of(d.view()))
                    .orElse(
                        SchedulerProtocol.DrainReply.error(
                            ErrorKind.NOT_FOUND, "no drain " + m.id())));
        return Effect().none();
      }
      if (c instanceof SchedulerProtocol.ListDrains m) {
        m.replyTo()
            .tell(
                new SchedulerProtocol.DrainsReply(
                    s.drains().stream().map(SchedulerState.Drain::view).toList()));
        return Effect().none();
      }
      if (c instanceof SchedulerProtocol.CancelDrain m) {
        return onCancelDrain(s, m);
      }
      if (c instanceof SchedulerProtocol.PlanRebalance m) {
        m.replyTo().tell(new SchedulerProtocol.PlanReply(plan(s, m.request()), null));
        return Effect().none();
      }
      if (c instanceof SchedulerProtocol.ApplyRebalance m) {
        return onApplyRebalance(s, m);
      }
      throw new IllegalArgumentException("unexpected command " + c);
    }

    // ---- submissions

    private Effect<SchedulerEvent, SchedulerState> onSubmit(
        SchedulerState s, SchedulerProtocol.Submit m) {
      MigrationRequest r = known.byName(m.request());
      String key = m.idempotencyKey() == null ? "" : m.idempotencyKey();
      if (!key.isEmpty()) {
        Optional<Job> seen = s.byIdempotencyKey(key);
        if (seen.isPresent()) {
          Job j = seen.get();
          // a retry sends the same body; the same key with another body is another request
          boolean same = j.request().equals(r);
          m.replyTo()
              .tell(
                  same
                      ? JobReply.of(view(j))
                      : JobReply.error(
                          ErrorKind.CONFLICT,
                          "idempotency key " + key + " was used for another request: " + j.id()));
          return Effect().none();
        }
      }
      Optional<JobReply> refused = Jobs.refusal(s, r, known);
      if (refused.isPresent()) {
        m.replyTo().tell(refused.get());
        return Effect().none();
      }
      HostInventory.VmInfo vm = known.vmOn(r.source(), r.vm()).orElseThrow();
      long seq = s.nextSeq();
      Job job = Jobs.create(r, key, seq, seq, vm, clock.getAsLong());
      return Effect()
          .persist(new SchedulerEvent.JobSubmitted(job))
          .thenRun(
              st -> {
                m.replyTo().tell(JobReply.of(view(st.job(job.id()).orElse(job))));
                ctx.getSelf().tell(Admit.INSTANCE);
              });
    }

    // ---- admission

    private HostLoads loads(SchedulerState s) {
      return HostLoads.of(known.reachableInventories(), s.running(), s.finished());
    }

    private Effect<SchedulerEvent, SchedulerState> onAdmit(SchedulerState s) {
      Admission.Decision d =
          Admission.decide(s, loads(s), known::reachable, s::hostState, settings);
      waiting = d.waiting();
      if (d.starts().isEmpty()) {
        return Effect().none();
      }
      long now = clock.getAsLong();
      List<SchedulerEvent> events = new ArrayList<>();
      for (Admission.Start st : d.starts()) {
        events.add(
            new SchedulerEvent.JobStarted(st.jobId(), st.destination(), st.bandwidth(), now));
      }
      events.addAll(Drains.jobsStarted(s, d.starts()));
      return Effect()
          .persist(events)
          .thenRun(
              st ->
                  d.starts().forEach(start -> st.job(start.jobId()).ifPresent(this::spawnRunner)));
    }

    private void spawnRunner(Job job) {
      if (!runners.containsKey(job.id())) {
        ActorRef<JobRunner.Command> r =
            ctx.spawn(JobRunner.create(job, ctx.getSelf(), RESEND), "job-" + job.id());
        runners.put(job.id(), r);
      }
    }

    // ---- inventory

    private Effect<SchedulerEvent, SchedulerState> onTick(SchedulerState s) {
      ctx.ask(
          Receptionist.Listing.class,
          ctx.getSystem().receptionist(),
          Duration.ofSeconds(5),
          ref -> Receptionist.find(AgentProtocol.AGENTS, ref),
          (listing, err) ->
              listing == null
                  ? Ignored.INSTANCE
                  : new AgentsListed(listing.getServiceInstances(AgentProtocol.AGENTS)));
      return drainDeadlines(s);
    }

    private Effect<SchedulerEvent, SchedulerState> onAgentsListed(AgentsListed m) {
      for (ActorRef<AgentProtocol.Command> agent : m.agents()) {
        ctx.ask(
            HostInventory.class,
            agent,
            Duration.ofSeconds(5),
            AgentProtocol.GetInventory::new,
            (inv, err) -> inv == null ? Ignored.INSTANCE : new InventoryRead(inv));
      }
      return Effect().none();
    }

    private Effect<SchedulerEvent, SchedulerState> onInventory(InventoryRead m) {
      boolean fresh = known.record(m.inventory());
      if (fresh || !waiting.isEmpty()) {
        ctx.getSelf().tell(Admit.INSTANCE);
      }
      return Effect().none();
    }

    private Effect<SchedulerEvent, SchedulerState> onProgress(SchedulerState s, JobProgress m) {
      if (s.job(m.id()).map(j -> j.state() == JobState.RUNNING).orElse(false)) {
        progress.put(m.id(), m.progress());
      }
      return Effect().none();
    }

    // ---- ends and cancels

    private Effect<SchedulerEvent, SchedulerState> onFinished(SchedulerState s, JobFinished m) {
      runners.remove(m.id());
      progress.remove(m.id());
      Optional<Job> job = s.job(m.id());
      if (job.isEmpty() || job.get().state().terminal()) {
        return Effect().none();
      }
      List<SchedulerEvent> events = new ArrayList<>();
      long now = clock.getAsLong();
      events.add(new SchedulerEvent.JobEnded(m.id(), m.state(), m.result(), m.message(), now));
      events.addAll(
          Drains.afterJobEnded(
              s, job.get(), m.state(), m.result(), m.message(), now, settings.drainAttempts()));
      ctx.getLog().info("{} {} ended {}: {}", m.id(), job.get().vm(), m.state(), m.message());
      return Effect().persist(events).thenRun(st -> ctx.getSelf().tell(Admit.INSTANCE));
    }

    private Effect<SchedulerEvent, SchedulerState> onCancelJob(
        SchedulerState s, SchedulerProtocol.CancelJob m) {
      Optional<Job> job = s.job(m.id());
      if (job.isEmpty()) {
        m.replyTo().tell(JobReply.error(ErrorKind.NOT_FOUND, "no migration " + m.id()));
        return Effect().none();
      }
      Job j = job.get();
      if (j.state().terminal()) {
        m.replyTo()
            .tell(
                JobReply.error(
                    ErrorKind.CONFLICT,
                    m.id() + " already ended: " + j.state().name().toLowerCase()));
        return Effect().none();
      }
      String reason = m.reason() == null || m.reason().isBlank() ? "cancelled" : m.reason();
      if (j.state() == JobState.QUEUED) {
        long now = clock.getAsLong();
        List<SchedulerEvent> events = new ArrayList<>();
        String message = "cancelled while queued: " + reason;
        events.add(new SchedulerEvent.JobEnded(j.id(), JobState.CANCELLED, null, message, now));
        events.addAll(
            Drains.afterJobEnded(
                s, j, JobState.CANCELLED, null, message, now, settings.drainAttempts()));
        return Effect()
            .persist(events)
            .thenRun(st -> m.replyTo().tell(JobReply.of(view(st.job(j.id()).orElseThrow()))));
      }
      ActorRef<JobRunner.Command> runner = runners.get(j.id());
      if (runner == null) {
        m.replyTo()
            .tell(JobReply.error(ErrorKind.UNAVAILABLE, "the runner of " + j.id() + " is gone"));
      } else {
        runner.tell(new JobRunner.Cancel(reason, m.replyTo()));
      }
      return Effect().none();
    }

    @SuppressWarnings("unchecked")
    private Effect<SchedulerEvent, SchedulerState> onCancelled(SchedulerState s, Cancelled m) {
      ActorRef<JobReply> replyTo = (ActorRef<JobReply>) m.token();
      Optional<Job> job = s.job(m.id());
      if (job.isEmpty()) {
        replyTo.tell(JobReply.error(ErrorKind.NOT_FOUND, "no migration " + m.id()));
      } else if (m.accepted()) {
        replyTo.tell(JobReply.of(view(job.get())));
      } else {
        replyTo.tell(JobReply.error(ErrorKind.CONFLICT, "cancel refused: " + m.message()));
      }
      return Effect().none();
    }

    // ---- drains

    private Effect<SchedulerEvent, SchedulerState> onStartDrain(
        SchedulerState s, SchedulerProtocol.StartDrain m) {
      SchedulerProtocol.DrainRequest r = m.request();
      long now = clock.getAsLong();
      Optional<SchedulerProtocol.DrainReply> refused = Drains.refusal(s, r, known, now);
      if (refused.isPresent()) {
        m.replyTo().tell(refused.get());
        return Effect().none();
      }
      HostLoads.Known k = known.get(r.host()).orElseThrow();
      String id = Jobs.newId("d-", 12);
      List<SchedulerEvent> events = Drains.started(s, id, r, k.inventory(), now);
      return Effect()
          .persist(events)
          .thenRun(
              st -> {
                m.replyTo()
                    .tell(SchedulerProtocol.DrainReply.of(st.drain(id).orElseThrow().view()));
                ctx.getSelf().tell(Admit.INSTANCE);
              });
    }

    private Effect<SchedulerEvent, SchedulerState> drainDeadlines(SchedulerState s) {
      List<SchedulerEvent> events = Drains.deadlinesPassed(s, clock.getAsLong());
      return events.isEmpty()
          ? Effect().none()
          : Effect().persist(events).thenRun(st -> ctx.getSelf().tell(Admit.INSTANCE));
    }

    private Effect<SchedulerEvent, SchedulerState> onCancelDrain(
        SchedulerState s, SchedulerProtocol.CancelDrain m) {
      Optional<SchedulerState.Drain> d = s.drain(m.id());
      if (d.isEmpty()) {
        m.replyTo()
            .tell(SchedulerProtocol.DrainReply.error(ErrorKind.NOT_FOUND, "no drain " + m.id()));
        return Effect().none();
      }
      if (!d.get().running()) {
        m.replyTo()
            .tell(
                SchedulerProtocol.DrainReply.error(
                    ErrorKind.CONFLICT, m.id() + " already ended: " + d.get().state));
        return Effect().none();
      }
      List<SchedulerEvent> events = Drains.cancelled(s, d.get(), clock.getAsLong());
      return Effect()
          .persist(events)
          .thenRun(
              st ->
                  m.replyTo()
                      .tell(
                          SchedulerProtocol.DrainReply.of(st.drain(m.id()).orElseThrow().view())));
    }

    private Effect<SchedulerEvent, SchedulerState> onEnableHost(
        SchedulerState s, SchedulerProtocol.EnableHost m) {
      if (s.hostState(m.host()).equals("draining")) {
        m.replyTo().tell(hosts(s));
        return Effect().none();
      }
      return Effect()
          .persist(new SchedulerEvent.HostEnabled(m.host(), clock.getAsLong()))
          .thenRun(
              st -> {
                m.replyTo().tell(hosts(st));
                ctx.getSelf().tell(Admit.INSTANCE);
              });
    }

    // ---- rebalancing

    private RebalancePlan plan(SchedulerState s, SchedulerProtocol.RebalanceRequest r) {
      long now = clock.getAsLong();
      return Rebalancer.plan(
          r.policy() == null ? SchedulerProtocol.Policy.BALANCE : r.policy(),
          r.threshold(),
          r.maxMoves() <= 0 ? 10 : r.maxMoves(),
          loads(s),
          vm ->
              s.activeJobOf(vm).isEmpty()
                  && s.movedAt(vm)
                      .map(at -> now - at >= settings.cooldown().toMillis())
                      .orElse(true),
          h -> known.reachable(h) && s.hostState(h).equals("active"),
          settings);
    }

    private Effect<SchedulerEvent, SchedulerState> onApplyRebalance(
        SchedulerState s, SchedulerProtocol.ApplyRebalance m) {
      RebalancePlan plan = plan(s, m.request());
      MigrationOptions options =
          m.request().options() == null ? MigrationOptions.defaults() : m.request().options();
      Rebalancer.Queued queued =
          Rebalancer.queue(
              plan, Jobs.newId("r-", 12), s.nextSeq(), options, known::vmOn, clock.getAsLong());
      List<SchedulerEvent> events = queued.events();
      RebalancePlan applied = queued.applied();
      if (events.isEmpty()) {
        m.replyTo().tell(new SchedulerProtocol.PlanReply(applied, null));
        return Effect().none();
      }
      return Effect()
          .persist(events)
          .thenRun(
              st -> {
                m.replyTo().tell(new SchedulerProtocol.PlanReply(applied, null));
                ctx.getSelf().tell(Admit.INSTANCE);
              });
    }

    // ---- views

    private SchedulerProtocol.JobView view(Job j) {
      return j.view(progress.get(j.id()), waiting.getOrDefault(j.id(), "admission pending"));
    }

    private SchedulerProtocol.HostsReply hosts(SchedulerState s) {
      return HostsView.of(s, known.all(), loads(s), known::reachable, settings, clock.getAsLong());
    }
  }
}
