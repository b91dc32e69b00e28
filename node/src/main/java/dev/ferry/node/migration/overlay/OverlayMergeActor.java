package dev.ferry.node.migration.overlay;

import dev.ferry.node.libvirt.BlockJob;
import dev.ferry.node.migration.Blocking;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.protocol.DestinationProtocol.OverlaySpec;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Executor;
import java.util.function.BiFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * Merges a running domain's temporary overlays back into their disks, one disk after the other:
 * active block commit (shallow where the base has its own backing file), wait until the job has
 * caught up (polled on a timer), pivot, check that both definitions name the original file, remove
 * the overlay. A failed commit is aborted and retried: until the pivot the overlay still masks what
 * the commit wrote, so the chain stays consistent (docs/overlay.md, O4).
 *
 * <pre>
 * state       on                                   next
 * next(i)     disk already on its base              next(i+1)
 *             commit started                        waiting(i)
 * waiting(i)  job caught up                         pivoting(i)
 *             job gone without a pivot, or error    retry: next(i) | Failed
 * pivoting(i) definitions name the base, overlay    next(i+1)
 *             removed
 * next(n)     -                                     Merged, stopped
 * </pre>
 */
public final class OverlayMergeActor {

  public sealed interface Command {}

  private record Poll() implements Command {}

  /** Whether the disk was still on its overlay (then its commit runs now). */
  private record CommitStarted(boolean onOverlay, Throwable error) implements Command {}

  private record JobRead(Optional<BlockJob> job, Throwable error) implements Command {}

  private record Pivoted(Throwable error) implements Command {}

  /** Whether the job is gone and both definitions name the base (the overlay then removed). */
  private record Settled(boolean settled, Throwable error) implements Command {}

  private record CommitAborted(Throwable error) implements Command {}

  /** What the merge reports, once. */
  public sealed interface Result {}

  public record Merged() implements Result {}

  public record Failed(String reason) implements Result {}

  /**
   * Merges {@code specs} of {@code vm} on this host, each commit limited to {@code bandwidth}
   * bytes/s (0: unlimited), with the attempts, poll interval and executor of the host's settings.
   */
  public static Behavior<Command> create(
      String vm,
      List<OverlaySpec> specs,
      long bandwidth,
      HostPorts services,
      ActorRef<Result> replyTo) {
    return Behaviors.setup(
        ctx ->
            Behaviors.withTimers(
                timers ->
                    new OverlayMergeActor(
                            ctx,
                            timers,
                            vm,
                            specs,
                            new OverlayOps(services),
                            bandwidth,
                            services.settings().migration().mergeAttempts(),
                            services.settings().migration().intervals().blockJobPoll(),
                            services.blocking(),
                            replyTo)
                        .next(0, 1)));
  }

  private final ActorContext<Command> ctx;
  private final TimerScheduler<Command> timers;
  private final String vm;
  private final List<OverlaySpec> specs;
  private final OverlayOps ops;
  private final long bandwidth;
  private final int attempts;
  private final Duration pollEvery;
  private final Executor blocking;
  private final ActorRef<Result> replyTo;

  private OverlayMergeActor(
      ActorContext<Command> ctx,
      TimerScheduler<Command> timers,
      String vm,
      List<OverlaySpec> specs,
      OverlayOps ops,
      long bandwidth,
      int attempts,
      Duration pollEvery,
      Executor blocking,
      ActorRef<Result> replyTo) {
    this.ctx = ctx;
    this.pollEvery = pollEvery;
    this.timers = timers;
    this.vm = vm;
    this.specs = specs;
    this.ops = ops;
    this.bandwidth = bandwidth;
    this.attempts = attempts;
    this.blocking = blocking;
    this.replyTo = replyTo;
  }

  /** Starts the commit of disk {@code i} ({@code attempt} of {@link #attempts}). */
  private Behavior<Command> next(int i, int attempt) {
    if (i == specs.size()) {
      replyTo.tell(new Merged());
      return Behaviors.stopped();
    }
    OverlaySpec s = specs.get(i);
    blocking(
        () -> {
          if (!ops.onOverlay(vm, s)) {
            ops.finish(vm, s); // merged before (a restart in the middle): just tidy up
            return false;
          }
          // a commit started before this agent restarted still runs in libvirt: wait for it
          if (ops.job(vm, s).isEmpty()) {
            ops.startCommit(vm, s, bandwidth);
          }
          return true;
        },
        (onOverlay, error) -> new CommitStarted(Boolean.TRUE.equals(onOverlay), error));
    return Behaviors.receive(Command.class)
        .onMessage(
            CommitStarted.class,
            m -> {
              if (m.error() != null) {
                return retry(
                    i,
                    attempt,
                    "starting the commit of "
                        + s.target()
                        + " failed: "
                        + MigrationFailure.reason(m.error()));
              }
              if (!m.onOverlay()) {
                return next(i + 1, 1);
              }
              timers.startTimerAtFixedRate(Poll.class, new Poll(), pollEvery);
              return waiting(i, attempt);
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** The commit of disk {@code i} runs; poll its block job until it has caught up. */
  private Behavior<Command> waiting(int i, int attempt) {
    OverlaySpec s = specs.get(i);
    return Behaviors.receive(Command.class)
        .onMessage(
            Poll.class,
            m -> {
              blocking(() -> ops.job(vm, s), JobRead::new);
              return Behaviors.same();
            })
        .onMessage(
            JobRead.class,
            m -> {
              if (m.error() != null) {
                timers.cancel(Poll.class);
                return retry(
                    i,
                    attempt,
                    "reading the commit of "
                        + s.target()
                        + ": "
                        + MigrationFailure.reason(m.error()));
              }
              Optional<BlockJob> job = m.job();
              if (job.isEmpty()) {
                timers.cancel(Poll.class);
                return retry(i, attempt, "the commit of " + s.target() + " ended without a pivot");
              }
              if (!job.get().caughtUp()) {
                return Behaviors.same();
              }
              timers.cancel(Poll.class);
              return pivoting(i, attempt);
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  private Behavior<Command> pivoting(int i, int attempt) {
    OverlaySpec s = specs.get(i);
    act(
        () -> {
          ops.pivot(vm, s);
        },
        Pivoted::new);
    return Behaviors.receive(Command.class)
        .onMessage(
            Pivoted.class,
            m -> {
              if (m.error() != null) {
                return retry(
                    i,
                    attempt,
                    "pivoting " + s.target() + " failed: " + MigrationFailure.reason(m.error()));
              }
              // the pivot returns before libvirt has saved the new definition: poll until it has
              timers.startTimerAtFixedRate(Poll.class, new Poll(), pollEvery);
              return settling(i, attempt, 0);
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Wait for the job to be gone and both definitions to name the base, then remove the overlay. */
  private Behavior<Command> settling(int i, int attempt, int polls) {
    OverlaySpec s = specs.get(i);
    return Behaviors.receive(Command.class)
        .onMessage(
            Poll.class,
            m -> {
              blocking(
                  () -> {
                    if (ops.job(vm, s).isPresent()) {
                      return false;
                    }
                    ops.finish(vm, s);
                    return true;
                  },
                  (settled, error) -> new Settled(Boolean.TRUE.equals(settled), error));
              return Behaviors.same();
            })
        .onMessage(
            Settled.class,
            m -> {
              if (m.error() == null && m.settled()) {
                timers.cancel(Poll.class);
                return next(i + 1, 1);
              }
              if (polls > 100) {
                timers.cancel(Poll.class);
                String why =
                    m.error() == null
                        ? "the commit job did not end"
                        : MigrationFailure.reason(m.error());
                return retry(i, attempt, "after pivoting " + s.target() + ": " + why);
              }
              return settling(i, attempt, polls + 1);
            })
        .onAnyMessage(x -> Behaviors.same())
        .build();
  }

  private Behavior<Command> retry(int i, int attempt, String why) {
    ctx.getLog().warn("{}: {} (attempt {} of {})", vm, why, attempt, attempts);
    if (attempt >= attempts) {
      replyTo.tell(new Failed(why));
      return Behaviors.stopped();
    }
    OverlaySpec s = specs.get(i);
    act(
        () -> {
          if (ops.job(vm, s).isPresent()) {
            ops.abortCommit(vm, s);
          }
        },
        CommitAborted::new);
    return Behaviors.receive(Command.class)
        .onMessage(CommitAborted.class, m -> next(i, attempt + 1))
        .onAnyMessage(x -> Behaviors.same())
        .build();
  }

  /** Runs a blocking step that only acts; its error (or null) comes back as a message. */
  private void act(
      Blocking.Act act, java.util.function.Function<Throwable, ? extends Command> result) {
    Blocking.pipe(ctx, blocking, act, result);
  }

  private <T> void blocking(
      Blocking.Work<T> work, BiFunction<? super T, Throwable, ? extends Command> result) {
    Blocking.pipe(ctx, blocking, work, result);
  }
}
