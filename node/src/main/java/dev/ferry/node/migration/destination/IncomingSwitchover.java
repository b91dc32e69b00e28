package dev.ferry.node.migration.destination;

import dev.ferry.node.journal.JournalEntry.Incoming;
import dev.ferry.node.journal.JournalEntry.IncomingEnd;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.destination.DestinationMessage.AbortChecked;
import dev.ferry.node.migration.destination.DestinationMessage.IdleTimeout;
import dev.ferry.node.migration.destination.DestinationMessage.JobChecked;
import dev.ferry.node.migration.destination.DestinationMessage.Lifecycle;
import dev.ferry.node.migration.destination.DestinationMessage.PausedChecked;
import dev.ferry.node.migration.destination.DestinationMessage.PollJob;
import dev.ferry.node.migration.destination.DestinationMessage.RecheckPaused;
import dev.ferry.node.migration.destination.DestinationMessage.SentBack;
import dev.ferry.node.migration.destination.DestinationMessage.Verified;
import dev.ferry.node.migration.destination.DestinationMigration.Message;
import dev.ferry.node.migration.destination.DestinationMigration.Remote;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Verification;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The switchover on the destination: armed for the incoming memory migration, the VM paused here
 * after libvirt's Finish, the files proved and the VM resumed ({@link DestinationVerification}), or
 * the paused VM sent back to the source.
 */
final class IncomingSwitchover extends DestinationFlow {

  IncomingSwitchover(DestinationMigration migration) {
    super(migration);
  }

  /**
   * Waiting for the incoming migration to end with the VM paused here. The source may act on the
   * switchover before this actor has seen its own "paused" event (libvirt's call on the source
   * returned first, or the event was late or lost): its FinalSynced or MigrateBack is then kept and
   * the domain's state checked at once, rather than dropped.
   */
  Behavior<Message> armed() {
    return migration.beforeSwitchover(
        migration
            .state()
            .on(
                Lifecycle.class,
                m -> m.event().is(LifecycleEvent.Type.SUSPENDED, "PAUSED"),
                m -> checkingPaused(m.event().at().toEpochMilli()))
            .on(
                Remote.class,
                r -> afterThePause(r.command()),
                r -> {
                  migration.pendingFromSource = r.command();
                  return checkingPaused(System.currentTimeMillis());
                })
            .on(RecheckPaused.class, m -> checkingPaused(System.currentTimeMillis()))
            .on(
                Lifecycle.class,
                m -> m.event().type() == LifecycleEvent.Type.RESUMED,
                m -> {
                  // overlay strategy: libvirt resumed the VM here in its Finish phase
                  migration.resumedAt = m.event().at().toEpochMilli();
                  timers.cancel(IdleTimeout.class);
                  migration.journal(Incoming.RESUMED, null);
                  return Behaviors.same();
                })
            .on(
                DestinationProtocol.MergeOverlays.class,
                m -> {
                  timers.cancel(IdleTimeout.class);
                  return migration.overlay.merging(m.overlays(), m.replyTo());
                })
            .on(Lifecycle.class, m -> Behaviors.same()));
  }

  private static boolean afterThePause(DestinationProtocol.Command c) {
    return c instanceof DestinationProtocol.FinalSynced
        || c instanceof DestinationProtocol.MigrateBack;
  }

  /** Is the VM paused here after libvirt's Finish? Only then does the switchover count here. */
  private Behavior<Message> checkingPaused(long at) {
    migration.blocking(() -> host.state(manifest.vm()), PausedChecked::new);
    return migration
        .state()
        .on(
            PausedChecked.class,
            s -> {
              if (!s.failed() && s.state() == DomainState.PAUSED) {
                timers.cancel(IdleTimeout.class);
                migration.journal(Incoming.PAUSED, null);
                source.tell(new DestinationProtocol.DestinationPaused(at));
                // libvirt metadata only: done while the source syncs the files, and still
                // compared with the manifest before any resume
                migration.earlyRedefine =
                    CompletableFuture.supplyAsync(
                        () -> host.redefine(manifest, Verification.none()), services.blocking());
                return pausedThenPending();
              }
              if (migration.pendingFromSource != null) {
                // the source is ahead of libvirt here: look again shortly
                timers.startSingleTimer(
                    RecheckPaused.class,
                    new RecheckPaused(),
                    services.settings().migration().intervals().blockJobPoll());
              }
              return armed();
            })
        .on(
            Remote.class,
            r -> afterThePause(r.command()),
            r -> {
              migration.pendingFromSource = r.command();
              return Behaviors.same();
            })
        .on(Lifecycle.class, x -> Behaviors.same())
        .build();
  }

  /** Paused here; a command the source sent before we saw the pause is handled now. */
  private Behavior<Message> pausedThenPending() {
    DestinationProtocol.Command pending = migration.pendingFromSource;
    migration.pendingFromSource = null;
    if (pending instanceof DestinationProtocol.FinalSynced m) {
      return verifying(m.bitmaps(), m.replyTo());
    }
    if (pending instanceof DestinationProtocol.MigrateBack m) {
      return migratingBack(m.sourceHost(), m.replyTo());
    }
    return paused();
  }

  /**
   * The VM is paused here with inactive images; the source makes our files match. We never act on
   * our own in this state: the source's files are authoritative and the source decides.
   */
  Behavior<Message> paused() {
    return migration
        .state()
        .on(
            DestinationProtocol.FinalSynced.class,
            m -> {
              return verifying(m.bitmaps(), m.replyTo());
            })
        .on(
            DestinationProtocol.MigrateBack.class,
            m -> {
              return migratingBack(m.sourceHost(), m.replyTo());
            })
        .on(
            DestinationProtocol.Abort.class,
            a -> {
              // only once the VM is gone (the source took it back through this host's libvirt):
              // a paused VM here is never removed with its files
              migration.blocking(
                  () -> host.state(manifest.vm()),
                  (state, error) -> new AbortChecked(a, state, error));
              return Behaviors.same();
            })
        .on(
            AbortChecked.class,
            c -> {
              if (!c.failed() && c.state() == DomainState.NOSTATE) {
                return migration.aborting(c.abort().reason(), c.abort().replyTo());
              }
              c.abort()
                  .replyTo()
                  .tell(
                      new DestinationProtocol.Failed(
                          manifest.vm()
                              + " is paused on "
                              + services.settings().host()
                              + ": migrate it back before aborting"));
              return Behaviors.same();
            })
        .on(
            DestinationProtocol.Release.class,
            m -> {
              ctx.getLog()
                  .warn(
                      "{}: released while paused here ({}); leaving it paused for an operator",
                      manifest.vm(),
                      m.outcome());
              return Behaviors.stopped();
            })
        .on(Lifecycle.class, m -> Behaviors.same())
        .build();
  }

  /** Proves the files, redefines snapshot metadata, resumes, checks the open inodes. */
  Behavior<Message> verifying(
      List<DestinationProtocol.DiskBitmap> bitmaps, ActorRef<DestinationProtocol.Reply> replyTo) {
    migration.journal(Incoming.VERIFYING, null);
    CompletableFuture<Verification> early = migration.earlyRedefine;
    migration.blocking(
        () ->
            DestinationVerification.verifyAndResume(
                host, manifest, bitmaps, early, () -> migration.journal(Incoming.RESUMED, null)),
        (verified, error) -> error == null ? verified : new Verified(null, false, 0, error));
    return migration
        .state()
        .on(
            Verified.class,
            m -> {
              if (m.failed()) {
                String reason = MigrationFailure.reason(m.error());
                DomainState state = migration.safeState();
                if (state == DomainState.PAUSED) {
                  replyTo.tell(
                      new DestinationProtocol.VerificationFailed(reason, Verification.none()));
                  return paused();
                }
                replyTo.tell(
                    new DestinationProtocol.Failed(
                        "verification step failed with "
                            + manifest.vm()
                            + " "
                            + state.name().toLowerCase()
                            + " here: "
                            + reason));
                return migration.running();
              }
              if (!m.resumed()) {
                Verification v = m.verification();
                String why =
                    v.snapshotTablesEqual()
                        ? v.imageCheckClean()
                            ? "libvirt snapshot metadata differs"
                            : "qemu-img check is not clean"
                        : "snapshot tables differ";
                migration.journal(Incoming.VERIFICATION_FAILED, why);
                replyTo.tell(
                    new DestinationProtocol.VerificationFailed(
                        why + ": " + String.join("; ", v.details()), v));
                return paused();
              }
              Verified r = m;
              if (!r.verification().openInodeMatches()) {
                migration.journal(
                    Incoming.INODE_MISMATCH, String.join("; ", r.verification().details()));
                replyTo.tell(
                    new DestinationProtocol.Failed(
                        "after the resume QEMU does not use the file at the path: "
                            + String.join("; ", r.verification().details())));
                return migration.running();
              }
              migration.journal(Incoming.VERIFIED, String.join("; ", r.verification().details()));
              replyTo.tell(new DestinationProtocol.Resumed(r.verification(), r.resumedAt()));
              return migration.running();
            })
        .on(Lifecycle.class, m -> Behaviors.same())
        .build();
  }

  /**
   * Sends the paused VM back to the source, then removes what we created. The incoming job may
   * still be finishing (the source starts its final sync at our "paused" event, inside libvirt's
   * Finish) and libvirt refuses a second migration job meanwhile: wait for it on a timer.
   */
  Behavior<Message> migratingBack(String sourceHost, ActorRef<DestinationProtocol.Reply> replyTo) {
    migration.journal(Incoming.MIGRATING_BACK, sourceHost);
    timers.startTimerAtFixedRate(
        PollJob.class, new PollJob(), services.settings().migration().intervals().blockJobPoll());
    timers.startSingleTimer(
        IdleTimeout.class, new IdleTimeout(), services.settings().tools().commandTimeout());
    return migration
        .state()
        .on(
            PollJob.class,
            m -> {
              migration.blocking(() -> host.jobActive(manifest.vm()), JobChecked::new);
              return Behaviors.same();
            })
        .on(
            JobChecked.class,
            m -> {
              if (!m.failed() && !m.active()) {
                timers.cancel(PollJob.class);
                timers.cancel(IdleTimeout.class);
                return sendingBack(sourceHost, replyTo);
              }
              return Behaviors.same();
            })
        .on(
            IdleTimeout.class,
            m -> {
              timers.cancel(PollJob.class);
              replyTo.tell(
                  new DestinationProtocol.Failed(
                      "the incoming migration job of " + manifest.vm() + " did not end"));
              return paused();
            })
        .on(Lifecycle.class, m -> Behaviors.same())
        .build();
  }

  Behavior<Message> sendingBack(String sourceHost, ActorRef<DestinationProtocol.Reply> replyTo) {
    migration.blocking(
        () -> {
          host.migrateBack(manifest.vm(), sourceHost, manifest);
          return host.cleanup(manifest);
        },
        SentBack::new);
    return migration
        .state()
        .on(
            SentBack.class,
            m -> {
              if (m.failed()) {
                replyTo.tell(new DestinationProtocol.Failed(MigrationFailure.reason(m.error())));
                return paused();
              }
              migration.ended(IncomingEnd.MIGRATED_BACK, null);
              replyTo.tell(new DestinationProtocol.MigratedBack(System.currentTimeMillis()));
              return awaitRelease();
            })
        .on(Lifecycle.class, m -> Behaviors.same())
        .build();
  }

  /**
   * Our part is over; stop when the source says so. Stopping at once would let the source see us
   * terminate before it read our last reply (death notices travel apart from messages).
   */
  Behavior<Message> awaitRelease() {
    timers.startSingleTimer(
        IdleTimeout.class,
        new IdleTimeout(),
        services.settings().migration().intervals().releaseWait());
    return migration
        .state()
        .on(DestinationProtocol.Release.class, r -> Behaviors.stopped())
        .on(IdleTimeout.class, m -> Behaviors.stopped())
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }
}
