package dev.ferry.node.migration.target;

import dev.ferry.node.journal.JournalEntry.Incoming;
import dev.ferry.node.journal.JournalEntry.IncomingEnd;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.overlay.OverlayMergeActor;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.node.migration.target.MigrationTargetActor.Message;
import dev.ferry.node.migration.target.MigrationTargetActor.Remote;
import dev.ferry.node.migration.target.TargetMessage.Adopted;
import dev.ferry.node.migration.target.TargetMessage.CopiesChecked;
import dev.ferry.node.migration.target.TargetMessage.Lifecycle;
import dev.ferry.node.migration.target.TargetMessage.MergeDone;
import dev.ferry.node.migration.target.TargetMessage.MergeVerified;
import dev.ferry.node.migration.target.TargetMessage.OverlaysReady;
import dev.ferry.node.migration.target.TargetMessage.Recovered;
import dev.ferry.protocol.TargetProtocol;
import dev.ferry.protocol.Verification;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The overlay strategy on the destination: the frozen copies checked, fresh overlays before the
 * migration, and after libvirt resumed the VM here the merge of the overlays into the copies,
 * proved before anything is acknowledged; also the merge a restarted agent finishes.
 */
final class IncomingOverlay extends TargetFlow {

  IncomingOverlay(MigrationTargetActor target) {
    super(target);
  }

  /** Overlay strategy: the frozen files copied here against the manifest, before migrating. */
  Behavior<Message> verifyingCopies(ActorRef<TargetProtocol.Reply> replyTo) {
    target.blocking(() -> host.verifyCopies(manifest), CopiesChecked::new);
    return Behaviors.receive(Message.class)
        .onMessage(
            CopiesChecked.class,
            m -> {
              if (m.failed()) {
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "verifying the copies failed: " + MigrationFailure.reason(m.error())));
              } else {
                Verification v = m.verification();
                if (v.snapshotTablesEqual() && v.imageCheckClean()) {
                  target.copiesVerified = v;
                  target.journal(Incoming.COPIES_VERIFIED, String.join("; ", v.details()));
                  replyTo.tell(new TargetProtocol.CopiesVerified());
                } else {
                  replyTo.tell(
                      new TargetProtocol.Failed(
                          "the copies differ from the source: " + String.join("; ", v.details())));
                }
              }
              return target.waiting();
            })
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Abort,
            r -> {
              TargetProtocol.Abort a = (TargetProtocol.Abort) r.command();
              return target.aborting(a.reason(), a.replyTo());
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /** Overlay strategy: fresh overlays over the copies, immediately before the migration. */
  Behavior<Message> creatingOverlays(
      List<TargetProtocol.OverlaySpec> specs, ActorRef<TargetProtocol.Reply> replyTo) {
    target.blocking(
        () -> {
          new OverlayOps(services).createOnDestination(specs);
          return null;
        },
        (none, error) -> new OverlaysReady(error));
    return Behaviors.receive(Message.class)
        .onMessage(
            OverlaysReady.class,
            m -> {
              if (m.failed()) {
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "creating the overlays failed: " + MigrationFailure.reason(m.error())));
              } else {
                target.journal(Incoming.OVERLAYS_CREATED, null);
                replyTo.tell(new TargetProtocol.OverlaysCreated());
              }
              return target.waiting();
            })
        .onMessage(
            Remote.class,
            r -> r.command() instanceof TargetProtocol.Abort,
            r -> {
              TargetProtocol.Abort a = (TargetProtocol.Abort) r.command();
              return target.aborting(a.reason(), a.replyTo());
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /**
   * Overlay strategy: the VM runs here on its overlays; merge them back into the copied files, then
   * prove the result (snapshot tables, check, metadata, open inodes). The migration is not
   * acknowledged before this has finished: until then only the journal holds the snapshot XML, and
   * a restart from a definition naming the original file would roll the disk back.
   */
  Behavior<Message> merging(
      List<TargetProtocol.OverlaySpec> specs, ActorRef<TargetProtocol.Reply> replyTo) {
    target.journal(Incoming.MERGING, null);
    ctx.spawnAnonymous(
        OverlayMergeActor.create(
            manifest.vm(),
            specs,
            services.settings().migration().commitBandwidth(),
            services,
            ctx.messageAdapter(OverlayMergeActor.Result.class, MergeDone::new)));
    return Behaviors.receive(Message.class)
        .onMessage(
            MergeDone.class,
            m -> {
              if (m.result() instanceof OverlayMergeActor.Failed f) {
                target.journal(Incoming.MERGE_FAILED, f.reason());
                replyTo.tell(
                    new TargetProtocol.Failed("merging the overlays failed: " + f.reason()));
                return onChain(specs);
              }
              target.journal(Incoming.MERGED, null);
              target.blocking(
                  () -> TargetVerification.verifyMerged(host, manifest), MergeVerified::new);
              return Behaviors.same();
            })
        .onMessage(
            MergeVerified.class,
            m -> {
              if (m.failed()) {
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "verifying after the merge failed: " + MigrationFailure.reason(m.error())));
                return target.running();
              }
              Verification v = m.verification();
              target.journal(
                  v.passed() ? Incoming.VERIFIED : Incoming.VERIFICATION_FAILED,
                  String.join("; ", v.details()));
              if (v.passed()) {
                replyTo.tell(
                    new TargetProtocol.Merged(v, target.resumedAt, System.currentTimeMillis()));
              } else {
                replyTo.tell(
                    new TargetProtocol.Failed(
                        "after the merge: " + String.join("; ", v.details())));
              }
              return target.running();
            })
        .onMessage(Lifecycle.class, m -> Behaviors.same())
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  Behavior<Message> finishRecovery(TargetProtocol.Reply reply) {
    if (reply instanceof TargetProtocol.Merged) {
      target.blocking(
          () -> {
            host.adopt(manifest);
            return null;
          },
          (none, error) -> new Adopted(error));
      return Behaviors.receive(Message.class)
          .onMessage(
              Adopted.class,
              s -> {
                target.ended(IncomingEnd.RUNNING, "merged after a restart");
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
  Behavior<Message> onChain(List<TargetProtocol.OverlaySpec> specs) {
    return Behaviors.receive(Message.class)
        .onMessage(Recovered.class, m -> target.recovery, m -> finishRecovery(m.reply()))
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
}
