package dev.ferry.node.disksync;

import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.settings.NodeSettings;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.stream.Materializer;

/**
 * Moves one disk's bytes for a migration: the bulk copy while the VM runs (tar or rsync, sparse,
 * throttled), optional warm rsync passes, and the final sync while the VM is paused (the dirty
 * bitmap delta, or rsync --inplace). Reports progress to its parent every progress interval.
 *
 * <pre>
 * state           on                         goes to
 * idle            BulkCopy                   copying
 * copying         copy done / failed         idle (BulkCopied / Failed)
 * idle            ArmFinalSync (delta)       arming -> idle (Armed), applier kept
 * idle            FinalSync                  syncing
 * syncing         done / failed              idle (FinalSyncDone / Failed)
 * any             Stop                       stopped (processes killed)
 * </pre>
 *
 * A delta that cannot be planned (image the planner refuses) falls back to rsync --inplace, and the
 * result says so.
 */
public final class DiskSyncActor {

  /** Commands from the migration. */
  public sealed interface Command {}

  public record BulkCopy() implements Command {}

  /** Start the delta applier on the destination now, so its JVM start is not paid while paused. */
  public record ArmFinalSync() implements Command {}

  /** Make the destination file match; {@code forceRsync} after a failed delta attempt. */
  public record FinalSync(boolean forceRsync) implements Command {}

  public record Stop() implements Command {}

  private record Tick() implements Command {}

  private record CopyEnded(String step, String method, long bytes, Throwable error)
      implements Command {}

  private record ApplierReady(CopyPipelines.Applier applier, Throwable error) implements Command {}

  /** What the disk reports to its migration. */
  public sealed interface Event {
    String target();
  }

  public record Progress(String target, String method, long bytesDone, long bytesTotal)
      implements Event {}

  public record BulkCopied(String target, String method, long bytes) implements Event {}

  public record Armed(String target, String note) implements Event {}

  public record FinalSyncDone(String target, String method, long bytes, Optional<String> bitmapLeft)
      implements Event {}

  public record Failed(String target, String step, String reason) implements Event {}

  public static Behavior<Command> create(
      DiskJob job,
      ActorRef<Event> parent,
      ProcessRunner runner,
      NodeSettings settings,
      Executor blocking) {
    return Behaviors.setup(
        ctx ->
            Behaviors.withTimers(
                timers ->
                    new DiskSyncActor(
                            ctx,
                            timers,
                            job,
                            parent,
                            new CopyPipelines(
                                runner, settings, Materializer.createMaterializer(ctx), blocking),
                            settings)
                        .idle(Optional.empty())));
  }

  private final ActorContext<Command> ctx;
  private final TimerScheduler<Command> timers;
  private final DiskJob job;
  private final ActorRef<Event> parent;
  private final CopyPipelines pipelines;
  private final NodeSettings settings;
  private final AtomicLong counter = new AtomicLong();
  private final AtomicLong total = new AtomicLong();
  private String method = "idle";
  private CopyPipelines.Copy running;

  private DiskSyncActor(
      ActorContext<Command> ctx,
      TimerScheduler<Command> timers,
      DiskJob job,
      ActorRef<Event> parent,
      CopyPipelines pipelines,
      NodeSettings settings) {
    this.ctx = ctx;
    this.timers = timers;
    this.job = job;
    this.parent = parent;
    this.pipelines = pipelines;
    this.settings = settings;
  }

  /** Waiting for the migration's next step; an armed applier may be waiting with us. */
  private Behavior<Command> idle(Optional<CopyPipelines.Applier> applier) {
    return Behaviors.receive(Command.class)
        .onMessage(BulkCopy.class, m -> startBulk(applier))
        .onMessage(ArmFinalSync.class, m -> arm(applier))
        .onMessage(FinalSync.class, m -> startFinal(applier, m.forceRsync()))
        .onMessage(Stop.class, m -> stop(applier))
        .onMessage(Tick.class, m -> Behaviors.same())
        .onSignal(PostStop.class, s -> cleanup(applier))
        .build();
  }

  private Behavior<Command> startBulk(Optional<CopyPipelines.Applier> applier) {
    try {
      return bulk(applier);
    } catch (RuntimeException e) {
      return failed(applier, "bulk copy", e); // e.g. the program could not be started
    }
  }

  private Behavior<Command> bulk(Optional<CopyPipelines.Applier> applier) {
    counter.set(0);
    total.set(job.bytes());
    method = job.bulkWithRsync() ? "rsync" : "tar";
    running =
        job.bulkWithRsync()
            ? pipelines.rsync(
                job.path(),
                job.destination(),
                CopyPipelines.RsyncMode.SPARSE_COPY,
                job.bytesPerSecond(),
                job.bytes(),
                counter)
            : pipelines.tar(
                job.path(), job.destination(), job.bytesPerSecond(), job.bytes(), counter);
    String m = method;
    ctx.pipeToSelf(
        running.done,
        (bytes, err) -> new CopyEnded("bulk copy", m, bytes == null ? 0 : bytes, err));
    startTicks();
    return copying(applier, job.warmPasses(), 0);
  }

  /** A copy is running; {@code warmLeft} rsync passes follow the bulk copy. */
  private Behavior<Command> copying(
      Optional<CopyPipelines.Applier> applier, int warmLeft, long bulkBytes) {
    return Behaviors.receive(Command.class)
        .onMessage(Tick.class, m -> progress())
        .onMessage(
            CopyEnded.class,
            m -> {
              if (m.error() != null) {
                return failed(applier, m.step(), m.error());
              }
              long moved = bulkBytes + m.bytes();
              if (warmLeft > 0) {
                method = "rsync-warm";
                running =
                    pipelines.rsync(
                        job.path(),
                        job.destination(),
                        CopyPipelines.RsyncMode.IN_PLACE,
                        job.bytesPerSecond(),
                        job.bytes(),
                        counter);
                ctx.pipeToSelf(
                    running.done,
                    (b, e) -> new CopyEnded("warm pass", "rsync-warm", b == null ? 0 : b, e));
                return copying(applier, warmLeft - 1, moved);
              }
              running = null;
              timers.cancel(Tick.class);
              parent.tell(
                  new Progress(
                      job.target(), method, counter.get(), Math.max(counter.get(), total.get())));
              parent.tell(new BulkCopied(job.target(), method, moved));
              return idle(applier);
            })
        .onMessage(Stop.class, m -> stop(applier))
        .onSignal(PostStop.class, s -> cleanup(applier))
        .build();
  }

  private Behavior<Command> arm(Optional<CopyPipelines.Applier> applier) {
    if (job.bitmap().isEmpty() || applier.isPresent()) {
      parent.tell(
          new Armed(
              job.target(), applier.isPresent() ? "already armed" : "rsync needs no applier"));
      return Behaviors.same();
    }
    ctx.pipeToSelf(pipelines.startApplier(job.path(), job.destination()), ApplierReady::new);
    pipelines.warmUp(job.path());
    return arming(Optional.empty());
  }

  /**
   * The applier starts on the destination. The memory migration does not wait for it, so the final
   * sync may be asked for before it is ready: it then starts as soon as it is.
   */
  private Behavior<Command> arming(Optional<Boolean> finalSyncWaiting) {
    return Behaviors.receive(Command.class)
        .onMessage(FinalSync.class, m -> arming(Optional.of(m.forceRsync())))
        .onMessage(
            ApplierReady.class,
            m -> {
              Optional<CopyPipelines.Applier> applier = Optional.ofNullable(m.applier());
              if (m.error() != null) {
                // not fatal: the final sync starts one, or falls back to rsync
                ctx.getLog()
                    .warn(
                        "{}: delta applier did not start: {}",
                        job.target(),
                        m.error().getMessage());
                parent.tell(
                    new Armed(job.target(), "applier failed to start: " + m.error().getMessage()));
                applier = Optional.empty();
              } else {
                parent.tell(new Armed(job.target(), "applier ready"));
              }
              return finalSyncWaiting.isPresent()
                  ? startFinal(applier, finalSyncWaiting.get())
                  : idle(applier);
            })
        .onMessage(Stop.class, m -> stoppingWhileArming())
        .onMessage(Tick.class, m -> Behaviors.same())
        .build();
  }

  /** Stopped while the applier starts: wait for it, so it does not outlive us on either host. */
  private Behavior<Command> stoppingWhileArming() {
    return Behaviors.receive(Command.class)
        .onMessage(
            ApplierReady.class,
            m -> {
              if (m.applier() != null) {
                m.applier().process.kill();
              }
              return Behaviors.stopped();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  private Behavior<Command> startFinal(
      Optional<CopyPipelines.Applier> applier, boolean forceRsync) {
    counter.set(0);
    boolean delta = job.bitmap().isPresent() && !forceRsync;
    if (!delta) {
      applier.ifPresent(a -> a.process.kill());
      return runRsyncFinal(
          forceRsync && job.bitmap().isPresent()
              ? "rsync-inplace (after a failed delta)"
              : "rsync-inplace");
    }
    if (applier.isEmpty()) {
      // not armed (or the applier died): start one now, inside the paused window
      ctx.pipeToSelf(pipelines.startApplier(job.path(), job.destination()), ApplierReady::new);
      return Behaviors.receive(Command.class)
          .onMessage(
              ApplierReady.class,
              m ->
                  m.error() != null
                      ? runRsyncFinal("rsync-inplace (applier did not start)")
                      : runDelta(m.applier()))
          .onMessage(Stop.class, m -> stop(Optional.empty()))
          .onMessage(Tick.class, m -> Behaviors.same())
          .build();
    }
    return runDelta(applier.get());
  }

  private Behavior<Command> runDelta(CopyPipelines.Applier applier) {
    method = "bitmap-delta";
    AtomicLong planned = new AtomicLong();
    running = pipelines.delta(job.path(), job.bitmap().orElseThrow(), applier, 0, counter, planned);
    total.set(0);
    ctx.pipeToSelf(
        running.done,
        (bytes, err) ->
            new CopyEnded("final sync", "bitmap-delta", bytes == null ? 0 : bytes, err));
    startTicks();
    return finalSyncing(true);
  }

  private Behavior<Command> runRsyncFinal(String label) {
    method = label;
    total.set(job.bytes());
    running =
        pipelines.rsync(
            job.path(),
            job.destination(),
            CopyPipelines.RsyncMode.IN_PLACE,
            0,
            job.bytes(),
            counter);
    ctx.pipeToSelf(
        running.done,
        (bytes, err) -> new CopyEnded("final sync", label, bytes == null ? 0 : bytes, err));
    startTicks();
    return finalSyncing(false);
  }

  /** The final sync is running; with the delta, a planner refusal falls back to rsync. */
  private Behavior<Command> finalSyncing(boolean delta) {
    return Behaviors.receive(Command.class)
        .onMessage(Tick.class, m -> progress())
        .onMessage(
            CopyEnded.class,
            m -> {
              running = null;
              timers.cancel(Tick.class);
              if (m.error() != null) {
                if (delta && m.error() instanceof dev.ferry.node.qcow2.Qcow2Exception q) {
                  ctx.getLog()
                      .warn(
                          "{}: delta not possible ({}): falling back to rsync",
                          job.target(),
                          q.getMessage());
                  return runRsyncFinal("rsync-inplace (delta refused: " + q.getMessage() + ")");
                }
                return failed(Optional.empty(), m.step(), m.error());
              }
              parent.tell(
                  new FinalSyncDone(
                      job.target(),
                      m.method(),
                      m.bytes(),
                      delta ? job.bitmap() : Optional.empty()));
              return idle(Optional.empty());
            })
        .onMessage(Stop.class, m -> stop(Optional.empty()))
        .onSignal(PostStop.class, s -> cleanup(Optional.empty()))
        .build();
  }

  private Behavior<Command> failed(
      Optional<CopyPipelines.Applier> applier, String step, Throwable error) {
    running = null;
    timers.cancel(Tick.class);
    String reason = error.getMessage() == null ? error.toString() : error.getMessage();
    ctx.getLog().warn("{}: {} failed: {}", job.target(), step, reason);
    parent.tell(new Failed(job.target(), step, reason));
    return idle(applier);
  }

  private void startTicks() {
    timers.startTimerAtFixedRate(Tick.class, new Tick(), settings.migration().progressInterval());
  }

  private Behavior<Command> progress() {
    parent.tell(
        new Progress(job.target(), method, counter.get(), Math.max(counter.get(), total.get())));
    return Behaviors.same();
  }

  private Behavior<Command> stop(Optional<CopyPipelines.Applier> applier) {
    cleanup(applier);
    return Behaviors.stopped();
  }

  private Behavior<Command> cleanup(Optional<CopyPipelines.Applier> applier) {
    CopyPipelines.Copy r = running;
    if (r != null) {
      r.cancel();
      running = null;
    }
    applier.ifPresent(a -> a.process.kill());
    return Behaviors.same();
  }

  /** For tests and logs. */
  CompletionStage<Long> current() {
    return running == null ? null : running.done;
  }
}
