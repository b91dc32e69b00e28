package dev.ferry.node.migration.target;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.migration.MigrationBehaviors;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.MigrationServices;
import dev.ferry.node.migration.overlay.OverlayMergeActor;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.TargetProtocol;
import dev.ferry.protocol.Verification;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.BehaviorBuilder;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The destination's side of one incoming migration. It prepares the VM directories, watches the
 * incoming memory migration, tells the source when the VM is paused here after libvirt's Finish
 * phase, and after the final sync proves the files against the manifest before resuming: only a VM
 * whose files passed is ever resumed here.
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
public final class MigrationTargetActor {

  /** What the actor handles: commands from the source, wrapped, and its own messages. */
  public sealed interface Message {}

  /** A command from the source, through the adapter the source knows as this target. */
  public record Remote(TargetProtocol.Command command) implements Message {}

  private record Lifecycle(LifecycleEvent event) implements Message {}

  private record StepDone(String step, Object value, Throwable error) implements Message {}

  private record IdleTimeout() implements Message {}

  private record PollJob() implements Message {}

  public static Behavior<Message> create(
      Manifest manifest,
      MigrationOptions options,
      ActorRef<TargetProtocol.Reply> source,
      MigrationServices services) {
    return withContext(
        manifest,
        (ctx, timers) -> {
          MigrationTargetActor actor =
              new MigrationTargetActor(ctx, timers, manifest, source, services);
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
                      ctx.setLoggerName("dev.ferry.migration.target");
                      return start.apply(ctx, timers);
                    })));
  }

  private final ActorContext<Message> ctx;
  private final TimerScheduler<Message> timers;
  private final Manifest manifest;
  private final ActorRef<TargetProtocol.Reply> source;
  private final MigrationServices services;
  private final TargetHost host;
  private final MigrationJournal journal;
  private final AtomicReference<AutoCloseable> subscription = new AtomicReference<>();

  /** Snapshot metadata redefined while the source syncs the files (see armed()). */
  private CompletableFuture<Verification> earlyRedefine;

  /** Started by Recovery to finish a merge; nobody waits on our replies. */
  private boolean recovery;

  /** The exact check of the copies (overlay and cold strategies), once VerifyCopies passed. */
  private Verification copiesVerified;

  /** When libvirt resumed the VM here (overlay strategy), from the lifecycle event. */
  private long resumedAt;

  private MigrationTargetActor(
      ActorContext<Message> ctx,
      TimerScheduler<Message> timers,
      Manifest manifest,
      ActorRef<TargetProtocol.Reply> source,
      MigrationServices services) {
    this.ctx = ctx;
    this.timers = timers;
    this.manifest = manifest;
    this.source = source;
    this.services = services;
    this.host = new TargetHost(services);
    this.journal = services.journal();
  }

  private void journal(String event, String detail) {
    journal.append(
        manifest.migrationId(),
        MigrationJournal.Role.TARGET,
        JournalEntry.of(event, event, detail));
  }

  /** Preflight here: no such domain, directories free (or our own leftovers), space, memory. */
  private Behavior<Message> preparing() {
    ctx.getLog()
        .info(
            "{}: incoming migration from {} ({} disks)",
            manifest.vm(),
            manifest.sourceHost(),
            manifest.disks().size());
    journal.append(
        manifest.migrationId(), MigrationJournal.Role.TARGET, JournalEntry.started(manifest, null));
    blocking(
        "prepare",
        () -> {
          host.prepare(manifest);
          return null;
        });
    return Behaviors.receive(Message.class)
        .onMessage(
            StepDone.class,
            m -> {
              if (m.error() != null) {
                String reason = MigrationFailure.reason(m.error());
                ctx.getLog().info("{}: refusing the incoming migration: {}", manifest.vm(), reason);
                journal.append(
                    manifest.migrationId(),
                    MigrationJournal.Role.TARGET,
                    JournalEntry.of("finished", "refused", reason));
                source.tell(new TargetProtocol.Refused(manifest.migrationId(), reason));
                return Behaviors.stopped();
              }
              journal("prepared", String.join(",", manifest.directories()));
              source.tell(
                  new TargetProtocol.Ready(
                      manifest.migrationId(),
                      ctx.messageAdapter(TargetProtocol.Command.class, Remote::new)));
              return waiting();
            })
        .build();
  }

  /**
   * The source copies files into our directories; nothing for us to do but wait. If the source goes
   * silent for longer than the copy could take, we clean up: no domain was created here.
   */
  private Behavior<Message> waiting() {
    var t = services.settings().migration().timeouts();
    timers.startSingleTimer(
        IdleTimeout.class,
        new IdleTimeout(),
        t.copy(manifest.totalBytes())
            .plus(t.memory(manifest.memoryKiB() * 1024))
            .plus(t.shutdown()));
    return beforeSwitchover(
        Behaviors.receive(Message.class)
            .onMessage(
                Remote.class,
                r -> r.command() instanceof TargetProtocol.ArmSwitchover,
                r -> {
                  TargetProtocol.ArmSwitchover m = (TargetProtocol.ArmSwitchover) r.command();

                  subscribe();
                  journal("armed", null);
                  m.replyTo().tell(new TargetProtocol.Armed());
                  return armed();
                })
            .onMessage(
                Remote.class,
                r -> r.command() instanceof TargetProtocol.VerifyCopies,
                r -> verifyingCopies(((TargetProtocol.VerifyCopies) r.command()).replyTo()))
            .onMessage(
                Remote.class,
                r -> r.command() instanceof TargetProtocol.CreateOverlays,
                r -> {
                  TargetProtocol.CreateOverlays m = (TargetProtocol.CreateOverlays) r.command();
                  return creatingOverlays(m.overlays(), m.replyTo());
                })
            .onMessage(
                Remote.class,
                r -> r.command() instanceof TargetProtocol.StartCold,
                r -> {
                  TargetProtocol.StartCold m = (TargetProtocol.StartCold) r.command();
                  return startingCold(m.domainXml(), m.replyTo());
                }));
  }

  /**
   * Cold strategy: the guest is shut off on the source and its copies here were verified; define,
   * redefine the snapshots, boot, check. A failure leaves the domain defined but not running, for
   * the source's Abort to remove.
   */
  private Behavior<Message> startingCold(String domainXml, ActorRef<TargetProtocol.Reply> replyTo) {
    if (copiesVerified == null) {
      replyTo.tell(
          new TargetProtocol.Failed(
              "refusing to start " + manifest.vm() + ": its copies were not verified here"));
      return Behaviors.same();
    }
    timers.cancel(IdleTimeout.class);
    journal("cold-starting", null);
    blocking("start-cold", () -> host.startCold(manifest, domainXml, copiesVerified));
    return Behaviors.receive(Message.class)
        .onMessage(
            StepDone.class,
            m -> m.step().equals("start-cold"),
            m -> {
              if (m.error() != null) {
                String why =
                    "starting "
                        + manifest.vm()
                        + " on "
                        + services.settings().host()
                        + " failed: "
                        + MigrationFailure.reason(m.error());
                journal("cold-start-failed", why);
                replyTo.tell(new TargetProtocol.Failed(why));
                return waiting();
              }
              Verification v = (Verification) m.value();
              journal("verified", String.join("; ", v.details()));
              replyTo.tell(new TargetProtocol.ColdStarted(v, System.currentTimeMillis()));
              return running();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Overlay strategy: the frozen files copied here against the manifest, before migrating. */
  private Behavior<Message> verifyingCopies(ActorRef<TargetProtocol.Reply> replyTo) {
    blocking("verify-copies", () -> host.verifyCopies(manifest));
    return Behaviors.receive(Message.class)
        .onMessage(
            StepDone.class,
            m -> m.step().equals("verify-copies"),
            m -> {
              if (m.error() != null) {
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "verifying the copies failed: " + MigrationFailure.reason(m.error())));
              } else {
                Verification v = (Verification) m.value();
                if (v.snapshotTablesEqual() && v.imageCheckClean()) {
                  copiesVerified = v;
                  journal("copies-verified", String.join("; ", v.details()));
                  replyTo.tell(new TargetProtocol.CopiesVerified());
                } else {
                  replyTo.tell(
                      new TargetProtocol.Failed(
                          "the copies differ from the source: " + String.join("; ", v.details())));
                }
              }
              return waiting();
            })
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Abort,
            r -> {
              TargetProtocol.Abort a = (TargetProtocol.Abort) r.command();
              return aborting(a.reason(), a.replyTo());
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Overlay strategy: fresh overlays over the copies, immediately before the migration. */
  private Behavior<Message> creatingOverlays(
      List<TargetProtocol.OverlaySpec> specs, ActorRef<TargetProtocol.Reply> replyTo) {
    blocking(
        "create-overlays",
        () -> {
          new OverlayOps(services).createOnDestination(specs);
          return null;
        });
    return Behaviors.receive(Message.class)
        .onMessage(
            StepDone.class,
            m -> m.step().equals("create-overlays"),
            m -> {
              if (m.error() != null) {
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "creating the overlays failed: " + MigrationFailure.reason(m.error())));
              } else {
                journal("overlays-created", null);
                replyTo.tell(new TargetProtocol.OverlaysCreated());
              }
              return waiting();
            })
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Abort,
            r -> {
              TargetProtocol.Abort a = (TargetProtocol.Abort) r.command();
              return aborting(a.reason(), a.replyTo());
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Waiting for the incoming migration to end with the VM paused here. */
  private Behavior<Message> armed() {
    return beforeSwitchover(
        Behaviors.receive(Message.class)
            .onMessage(
                Lifecycle.class,
                m -> m.event().is(LifecycleEvent.Type.SUSPENDED, "PAUSED"),
                m -> {
                  long at = m.event().at().toEpochMilli();
                  blocking("check-paused", () -> host.state(manifest.vm()));
                  return Behaviors.receive(Message.class)
                      .onMessage(
                          StepDone.class,
                          s -> {
                            if (s.error() == null && s.value() == DomainState.PAUSED) {
                              timers.cancel(IdleTimeout.class);
                              journal("paused", null);
                              source.tell(new TargetProtocol.DestinationPaused(at));
                              // libvirt metadata only: done while the source syncs the files, and
                              // still compared with the manifest before any resume
                              earlyRedefine =
                                  CompletableFuture.supplyAsync(
                                      () -> host.redefine(manifest, Verification.none()),
                                      services.blocking());
                              return paused();
                            }
                            return armed();
                          })
                      .onMessage(Lifecycle.class, x -> Behaviors.same())
                      .build();
                })
            .onMessage(
                Lifecycle.class,
                m -> m.event().type() == LifecycleEvent.Type.RESUMED,
                m -> {
                  // overlay strategy: libvirt resumed the VM here in its Finish phase
                  resumedAt = m.event().at().toEpochMilli();
                  timers.cancel(IdleTimeout.class);
                  journal("resumed", null);
                  return Behaviors.same();
                })
            .onMessage(
                Remote.class,
                r -> r.command() instanceof TargetProtocol.MergeOverlays,
                r -> {
                  TargetProtocol.MergeOverlays m = (TargetProtocol.MergeOverlays) r.command();
                  timers.cancel(IdleTimeout.class);
                  return merging(m.overlays(), m.replyTo());
                })
            .onMessage(Lifecycle.class, m -> Behaviors.same()));
  }

  private record MergeDone(OverlayMergeActor.Result result) implements Message {}

  /**
   * Overlay strategy: the VM runs here on its overlays; merge them back into the copied files, then
   * prove the result (snapshot tables, check, metadata, open inodes). The migration is not
   * acknowledged before this has finished: until then only the journal holds the snapshot XML, and
   * a restart from a definition naming the original file would roll the disk back.
   */
  private Behavior<Message> merging(
      List<TargetProtocol.OverlaySpec> specs, ActorRef<TargetProtocol.Reply> replyTo) {
    journal("merging", null);
    ctx.spawnAnonymous(
        OverlayMergeActor.create(
            manifest.vm(),
            specs,
            new OverlayOps(services),
            services.settings().migration().commitBandwidth(),
            services.settings().migration().mergeAttempts(),
            services.blocking(),
            ctx.messageAdapter(OverlayMergeActor.Result.class, MergeDone::new)));
    return Behaviors.receive(Message.class)
        .onMessage(
            MergeDone.class,
            m -> {
              if (m.result() instanceof OverlayMergeActor.Failed f) {
                journal("merge-failed", f.reason());
                replyTo.tell(
                    new TargetProtocol.Failed("merging the overlays failed: " + f.reason()));
                return onChain(specs);
              }
              journal("merged", null);
              blocking(
                  "verify-merged",
                  () -> {
                    Verification v = host.verifyMerged(manifest);
                    Verification meta = host.redefine(manifest, Verification.none());
                    List<String> details = new java.util.ArrayList<>(v.details());
                    details.addAll(meta.details());
                    return host.inodeCheck(
                        manifest,
                        new Verification(
                            v.snapshotTablesEqual(),
                            v.imageCheckClean(),
                            meta.libvirtSnapshotsEqual(),
                            false,
                            details));
                  });
              return Behaviors.same();
            })
        .onMessage(
            StepDone.class,
            m -> m.step().equals("verify-merged"),
            m -> {
              if (m.error() != null) {
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "verifying after the merge failed: " + MigrationFailure.reason(m.error())));
                return running();
              }
              Verification v = (Verification) m.value();
              journal(
                  v.passed() ? "verified" : "verification-failed", String.join("; ", v.details()));
              if (v.passed()) {
                replyTo.tell(new TargetProtocol.Merged(v, resumedAt, System.currentTimeMillis()));
              } else {
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "after the merge: " + String.join("; ", v.details())));
              }
              return running();
            })
        .onMessage(Lifecycle.class, m -> Behaviors.same())
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** A reply this actor sent itself while recovering after a restart. */
  private record Recovered(TargetProtocol.Reply reply) implements Message {}

  /**
   * After a restart of this agent: the VM of an overlay migration runs here but its merge never
   * finished. Finish it from the journaled manifest (the overlay paths follow from it), prove the
   * result, and record it: the source's agent, waiting, reads it with QueryIncoming.
   */
  public static Behavior<Message> recover(Manifest manifest, MigrationServices services) {
    return withContext(
        manifest,
        (ctx, timers) -> {
          MigrationTargetActor actor =
              new MigrationTargetActor(
                  ctx, timers, manifest, ctx.getSystem().ignoreRef(), services);
          actor.recovery = true;
          ctx.getLog()
              .info(
                  "{}: finishing the merge of an overlay migration after a restart", manifest.vm());
          actor.subscribe();
          return MigrationBehaviors.closeOnStop(
              actor.merging(
                  OverlayOps.plan(manifest),
                  ctx.messageAdapter(TargetProtocol.Reply.class, Recovered::new)),
              actor.subscription);
        });
  }

  private Behavior<Message> finishRecovery(TargetProtocol.Reply reply) {
    if (reply instanceof TargetProtocol.Merged) {
      blocking(
          "adopt",
          () -> {
            host.adopt(manifest);
            return null;
          });
      return Behaviors.receive(Message.class)
          .onMessage(
              StepDone.class,
              s -> {
                journal.append(
                    manifest.migrationId(),
                    MigrationJournal.Role.TARGET,
                    JournalEntry.of("finished", "running", "merged after a restart"));
                return Behaviors.stopped();
              })
          .onAnyMessage(x -> Behaviors.same())
          .build();
    }
    ctx.getLog().error("{}: finishing the merge after a restart failed: {}", manifest.vm(), reply);
    return Behaviors.stopped();
  }

  /**
   * The merge failed; the VM runs here on the consistent two-file chain. A new merge may be asked.
   */
  private Behavior<Message> onChain(List<TargetProtocol.OverlaySpec> specs) {
    return Behaviors.receive(Message.class)
        .onMessage(Recovered.class, m -> recovery, m -> finishRecovery(m.reply()))
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.MergeOverlays,
            r -> merging(specs, ((TargetProtocol.MergeOverlays) r.command()).replyTo()))
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Release,
            r -> {
              ctx.getLog()
                  .error(
                      "{}: released while still on its overlay chain; the agent finishes the merge when it restarts",
                      manifest.vm());
              return Behaviors.stopped();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Messages that end a migration before the switchover. */
  private Behavior<Message> beforeSwitchover(BehaviorBuilder<Message> state) {
    return state
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Abort,
            r -> {
              TargetProtocol.Abort m = (TargetProtocol.Abort) r.command();
              return aborting(m.reason(), m.replyTo());
            })
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Release,
            r -> {
              TargetProtocol.Release m = (TargetProtocol.Release) r.command();
              return aborting("released: " + m.outcome(), null);
            })
        .onMessage(
            IdleTimeout.class,
            m ->
                aborting(
                    "no word from the source on " + manifest.sourceHost() + " for too long", null))
        .build();
  }

  /**
   * The VM is paused here with inactive images; the source makes our files match. We never act on
   * our own in this state: the source's files are authoritative and the source decides.
   */
  private Behavior<Message> paused() {
    return Behaviors.receive(Message.class)
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.FinalSynced,
            r -> {
              TargetProtocol.FinalSynced m = (TargetProtocol.FinalSynced) r.command();
              return verifying(m.bitmaps(), m.replyTo());
            })
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.MigrateBack,
            r -> {
              TargetProtocol.MigrateBack m = (TargetProtocol.MigrateBack) r.command();
              return migratingBack(m.sourceHost(), m.replyTo());
            })
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Release,
            r -> {
              TargetProtocol.Release m = (TargetProtocol.Release) r.command();

              ctx.getLog()
                  .warn(
                      "{}: released while paused here ({}); leaving it paused for an operator",
                      manifest.vm(),
                      m.outcome());
              return Behaviors.stopped();
            })
        .onMessage(Lifecycle.class, m -> Behaviors.same())
        .build();
  }

  /** Proves the files, redefines snapshot metadata, resumes, checks the open inodes. */
  private Behavior<Message> verifying(
      List<TargetProtocol.DiskBitmap> bitmaps, ActorRef<TargetProtocol.Reply> replyTo) {
    journal("verifying", null);
    blocking(
        "verify",
        () -> {
          // what each step costs: all of it is paused time
          long t0 = System.nanoTime();
          Verification v = host.verifyFiles(manifest, bitmaps);
          long t1 = System.nanoTime();
          if (!v.snapshotTablesEqual() || !v.imageCheckClean()) {
            return v;
          }
          Verification meta =
              earlyRedefine == null ? null : earlyRedefine.exceptionally(e -> null).join();
          if (meta == null) {
            meta = host.redefine(manifest, Verification.none());
          }
          List<String> merged = new java.util.ArrayList<>(v.details());
          merged.addAll(meta.details());
          v =
              new Verification(
                  v.snapshotTablesEqual(),
                  v.imageCheckClean(),
                  meta.libvirtSnapshotsEqual(),
                  false,
                  merged);
          long t2 = System.nanoTime();
          if (!v.libvirtSnapshotsEqual()) {
            return v;
          }
          host.resume(manifest.vm());
          long t3 = System.nanoTime();
          long resumedAt = System.currentTimeMillis();
          journal("resumed", null);
          Verification checked = host.inodeCheck(manifest, v);
          List<String> details = new java.util.ArrayList<>(checked.details());
          details.add(
              String.format(
                  "paused-time steps here: files %d ms, snapshot metadata %d ms, resume %d ms",
                  (t1 - t0) / 1_000_000, (t2 - t1) / 1_000_000, (t3 - t2) / 1_000_000));
          return new Resumed(
              new Verification(
                  checked.snapshotTablesEqual(),
                  checked.imageCheckClean(),
                  checked.libvirtSnapshotsEqual(),
                  checked.openInodeMatches(),
                  details),
              resumedAt);
        });
    return Behaviors.receive(Message.class)
        .onMessage(
            StepDone.class,
            m -> {
              if (m.error() != null) {
                String reason = MigrationFailure.reason(m.error());
                DomainState state = safeState();
                if (state == DomainState.PAUSED) {
                  replyTo.tell(new TargetProtocol.VerificationFailed(reason, Verification.none()));
                  return paused();
                }
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "verification step failed with "
                            + manifest.vm()
                            + " "
                            + state.name().toLowerCase()
                            + " here: "
                            + reason));
                return running();
              }
              if (m.value() instanceof Verification v) {
                String why =
                    v.snapshotTablesEqual()
                        ? v.imageCheckClean()
                            ? "libvirt snapshot metadata differs"
                            : "qemu-img check is not clean"
                        : "snapshot tables differ";
                journal("verification-failed", why);
                replyTo.tell(
                    new TargetProtocol.VerificationFailed(
                        why + ": " + String.join("; ", v.details()), v));
                return paused();
              }
              Resumed r = (Resumed) m.value();
              if (!r.verification().openInodeMatches()) {
                journal("inode-mismatch", String.join("; ", r.verification().details()));
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "after the resume QEMU does not use the file at the path: "
                            + String.join("; ", r.verification().details())));
                return running();
              }
              journal("verified", String.join("; ", r.verification().details()));
              replyTo.tell(new TargetProtocol.Resumed(r.verification(), r.resumedAt()));
              return running();
            })
        .onMessage(Lifecycle.class, m -> Behaviors.same())
        .build();
  }

  private record Resumed(Verification verification, long resumedAt) {}

  /** The VM runs here; when the source releases us, the directories become the VM's own. */
  private Behavior<Message> running() {
    ctx.getLog().info("{}: verified and running here", manifest.vm());
    return Behaviors.receive(Message.class)
        .onMessage(Recovered.class, m -> recovery, m -> finishRecovery(m.reply()))
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Release,
            r -> {
              TargetProtocol.Release m = (TargetProtocol.Release) r.command();

              blocking(
                  "adopt",
                  () -> {
                    host.adopt(manifest);
                    return null;
                  });
              return Behaviors.receive(Message.class)
                  .onMessage(
                      StepDone.class,
                      s -> {
                        journal.append(
                            manifest.migrationId(),
                            MigrationJournal.Role.TARGET,
                            JournalEntry.of("finished", "running", m.outcome()));
                        return Behaviors.stopped();
                      })
                  .onAnyMessage(x -> Behaviors.same())
                  .build();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /**
   * Sends the paused VM back to the source, then removes what we created. The incoming job may
   * still be finishing (the source starts its final sync at our "paused" event, inside libvirt's
   * Finish) and libvirt refuses a second migration job meanwhile: wait for it on a timer.
   */
  private Behavior<Message> migratingBack(
      String sourceHost, ActorRef<TargetProtocol.Reply> replyTo) {
    journal("migrating-back", sourceHost);
    timers.startTimerAtFixedRate(PollJob.class, new PollJob(), Duration.ofMillis(100));
    timers.startSingleTimer(
        IdleTimeout.class, new IdleTimeout(), services.settings().tools().commandTimeout());
    return Behaviors.receive(Message.class)
        .onMessage(
            PollJob.class,
            m -> {
              blocking("job-active", () -> host.jobActive(manifest.vm()));
              return Behaviors.same();
            })
        .onMessage(
            StepDone.class,
            m -> m.step().equals("job-active"),
            m -> {
              if (m.error() == null && Boolean.FALSE.equals(m.value())) {
                timers.cancel(PollJob.class);
                timers.cancel(IdleTimeout.class);
                return sendingBack(sourceHost, replyTo);
              }
              return Behaviors.same();
            })
        .onMessage(
            IdleTimeout.class,
            m -> {
              timers.cancel(PollJob.class);
              replyTo.tell(
                  new TargetProtocol.Failed(
                      "the incoming migration job of " + manifest.vm() + " did not end"));
              return paused();
            })
        .onMessage(Lifecycle.class, m -> Behaviors.same())
        .build();
  }

  private Behavior<Message> sendingBack(String sourceHost, ActorRef<TargetProtocol.Reply> replyTo) {
    blocking(
        "migrate-back",
        () -> {
          host.migrateBack(manifest.vm(), sourceHost, manifest);
          return host.cleanup(manifest);
        });
    return Behaviors.receive(Message.class)
        .onMessage(
            StepDone.class,
            m -> m.step().equals("migrate-back"),
            m -> {
              if (m.error() != null) {
                replyTo.tell(new TargetProtocol.Failed(MigrationFailure.reason(m.error())));
                return paused();
              }
              journal.append(
                  manifest.migrationId(),
                  MigrationJournal.Role.TARGET,
                  JournalEntry.of("finished", "migrated-back", null));
              replyTo.tell(new TargetProtocol.MigratedBack(System.currentTimeMillis()));
              return awaitRelease();
            })
        .onMessage(Lifecycle.class, m -> Behaviors.same())
        .build();
  }

  /**
   * Our part is over; stop when the source says so. Stopping at once would let the source see us
   * terminate before it read our last reply (death notices travel apart from messages).
   */
  private Behavior<Message> awaitRelease() {
    timers.startSingleTimer(IdleTimeout.class, new IdleTimeout(), Duration.ofMinutes(1));
    return Behaviors.receive(Message.class)
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Release,
            r -> Behaviors.stopped())
        .onMessage(IdleTimeout.class, m -> Behaviors.stopped())
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Removes what this migration created here and stops. */
  private Behavior<Message> aborting(String reason, ActorRef<TargetProtocol.Reply> replyTo) {
    ctx.getLog().info("{}: aborting the incoming migration: {}", manifest.vm(), reason);
    journal("aborting", reason);
    blocking("cleanup", () -> host.cleanup(manifest));
    return Behaviors.receive(Message.class)
        .onMessage(
            StepDone.class,
            m -> {
              if (m.error() != null) {
                String why = MigrationFailure.reason(m.error());
                if (replyTo != null) {
                  replyTo.tell(new TargetProtocol.Failed(why));
                }
                journal.append(
                    manifest.migrationId(),
                    MigrationJournal.Role.TARGET,
                    JournalEntry.of("finished", "abort-failed", why));
                return Behaviors.stopped();
              }
              @SuppressWarnings("unchecked")
              List<String> removed = (List<String>) m.value();
              if (replyTo != null) {
                replyTo.tell(new TargetProtocol.Aborted(removed));
              }
              journal.append(
                  manifest.migrationId(),
                  MigrationJournal.Role.TARGET,
                  JournalEntry.of("finished", "aborted", reason));
              return Behaviors.stopped();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  private DomainState safeState() {
    try {
      return host.state(manifest.vm());
    } catch (RuntimeException e) {
      return DomainState.NOSTATE;
    }
  }

  private void subscribe() {
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

  private void blocking(String step, Callable<?> work) {
    ctx.pipeToSelf(
        CompletableFuture.supplyAsync(
            () -> {
              try {
                return work.call();
              } catch (RuntimeException e) {
                throw e;
              } catch (Exception e) {
                throw new CompletionException(e);
              }
            },
            services.blocking()),
        (value, err) -> new StepDone(step, value, err));
  }

  static Duration idle(MigrationServices services, Manifest manifest) {
    var t = services.settings().migration().timeouts();
    return t.copy(manifest.totalBytes()).plus(t.memory(manifest.memoryKiB() * 1024));
  }
}
