package dev.ferry.node.scheduler;

import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import java.time.Duration;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * Runs one admitted job on its source's agent and reports back to the scheduler. Not persistent:
 * after a failover the scheduler starts a new runner for every running job, and because {@code
 * StartMigration} is idempotent on the agent (a running migration subscribes the caller, an ended
 * one answers with its result), asking again is always safe. It asks again whenever the agent has
 * been silent for {@code resend}, which also covers an agent that restarted.
 */
final class JobRunner {
  private JobRunner() {}

  sealed interface Command {}

  private enum Resend implements Command {
    INSTANCE
  }

  private record Found(Receptionist.Listing listing) implements Command {}

  private record Heard(MigrationEvent event) implements Command {}

  /** Ask the agent to cancel; the answer goes to the scheduler as {@link Scheduler.Cancelled}. */
  record Cancel(String reason, Object token) implements Command {}

  private record CancelAnswer(AgentProtocol.CancelReply reply, Object token) implements Command {}

  static Behavior<Command> create(Job job, ActorRef<Scheduler.Message> scheduler, Duration resend) {
    return Behaviors.setup(
        ctx ->
            Behaviors.withTimers(
                timers -> new JobRunner.Running(ctx, timers, job, scheduler, resend).start()));
  }

  private static final class Running {
    private final ActorContext<Command> ctx;
    private final TimerScheduler<Command> timers;
    private final Job job;
    private final ActorRef<Scheduler.Message> scheduler;
    private final Duration resend;
    private final ActorRef<MigrationEvent> events;
    private final ActorRef<Receptionist.Listing> listings;
    private ActorRef<AgentProtocol.Command> agent;

    Running(
        ActorContext<Command> ctx,
        TimerScheduler<Command> timers,
        Job job,
        ActorRef<Scheduler.Message> scheduler,
        Duration resend) {
      this.ctx = ctx;
      this.timers = timers;
      this.job = job;
      this.scheduler = scheduler;
      this.resend = resend;
      this.events = ctx.messageAdapter(MigrationEvent.class, Heard::new);
      this.listings = ctx.messageAdapter(Receptionist.Listing.class, Found::new);
    }

    Behavior<Command> start() {
      ctx.getSystem()
          .receptionist()
          .tell(Receptionist.find(AgentProtocol.agentKey(job.source()), listings));
      timers.startSingleTimer(Resend.INSTANCE, resend);
      return Behaviors.receive(Command.class)
          .onMessage(Found.class, this::onFound)
          .onMessage(Resend.class, r -> onResend())
          .onMessage(Heard.class, this::onHeard)
          .onMessage(Cancel.class, this::onCancel)
          .onMessage(CancelAnswer.class, this::onCancelAnswer)
          .build();
    }

    private Behavior<Command> onFound(Found f) {
      var agents = f.listing().getServiceInstances(AgentProtocol.agentKey(job.source()));
      if (agents.isEmpty()) {
        return Behaviors.same();
      }
      agent = agents.iterator().next();
      MigrationOptions options = job.request().options().withBandwidth(job.bandwidth());
      agent.tell(
          new AgentProtocol.StartMigration(job.id(), job.vm(), job.destination(), options, events));
      return Behaviors.same();
    }

    private Behavior<Command> onResend() {
      ctx.getSystem()
          .receptionist()
          .tell(Receptionist.find(AgentProtocol.agentKey(job.source()), listings));
      timers.startSingleTimer(Resend.INSTANCE, resend);
      return Behaviors.same();
    }

    private Behavior<Command> onHeard(Heard h) {
      // the agent is alive and knows the job: stay quiet until it is silent again
      timers.startSingleTimer(Resend.INSTANCE, resend);
      if (h.event() instanceof MigrationEvent.Progress p) {
        scheduler.tell(new Scheduler.JobProgress(job.id(), p.progress()));
        return Behaviors.same();
      } else if (h.event() instanceof MigrationEvent.Finished f) {
        scheduler.tell(
            new Scheduler.JobFinished(
                job.id(), JobState.of(f.result().outcome()), f.result(), f.result().message()));
        return Behaviors.stopped();
      } else if (h.event() instanceof MigrationEvent.Rejected r) {
        scheduler.tell(
            new Scheduler.JobFinished(
                job.id(),
                JobState.REJECTED,
                null,
                "refused by " + job.source() + ": " + r.reason()));
        return Behaviors.stopped();
      }
      // Unknown: the agent lost it (it cannot, StartMigration starts it); ask again
      return onResend();
    }

    private Behavior<Command> onCancel(Cancel c) {
      if (agent == null) {
        scheduler.tell(
            new Scheduler.Cancelled(
                job.id(), false, "the agent of " + job.source() + " is not reachable", c.token()));
        return Behaviors.same();
      }
      ctx.ask(
          AgentProtocol.CancelReply.class,
          agent,
          Duration.ofSeconds(10),
          ref -> new AgentProtocol.CancelMigration(job.id(), c.reason(), ref),
          (reply, err) ->
              new CancelAnswer(
                  reply != null
                      ? reply
                      : new AgentProtocol.CancelReply(
                          job.id(), false, "no answer from " + job.source() + ": " + err),
                  c.token()));
      return Behaviors.same();
    }

    private Behavior<Command> onCancelAnswer(CancelAnswer a) {
      scheduler.tell(
          new Scheduler.Cancelled(job.id(), a.reply().accepted(), a.reply().message(), a.token()));
      return Behaviors.same();
    }
  }
}
