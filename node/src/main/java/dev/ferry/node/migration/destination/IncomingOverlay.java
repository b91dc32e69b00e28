package dev.ferry.node.migration.destination;

import dev.ferry.node.journal.JournalEntry.Incoming;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.destination.DestinationMessage.CopiesChecked;
import dev.ferry.node.migration.destination.DestinationMessage.Lifecycle;
import dev.ferry.node.migration.destination.DestinationMessage.MergeDone;
import dev.ferry.node.migration.destination.DestinationMessage.MergeVerified;
import dev.ferry.node.migration.destination.DestinationMessage.OverlaysReady;
import dev.ferry.node.migration.destination.DestinationMessage.Recovered;
import dev.ferry.node.migration.destination.DestinationMigration.Message;
import dev.ferry.node.migration.overlay.OverlayMergeActor;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.protocol.DestinationProtocol;
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
final class IncomingOverlay extends DestinationFlow {

  IncomingOverlay(DestinationMigration migration) {
    super(migration);
  }

  /** Overlay strategy: the frozen files copied here against the manifest, before migrating. */
  Behavior<Message> verifyingCopies(ActorRef<DestinationProtocol.Reply> replyTo) {
    migration.blocking(() -> host.verifyCopies(manifest), CopiesChecked::new);
    return migration.awaiting(
        CopiesChecked.class,
        m -> {
          if (m.failed()) {
            replyTo.tell(
                new DestinationProtocol.Failed(
                    "verifying the copies failed: " + MigrationFailure.reason(m.error())));
          } else {
            Verification v = m.verification();
            if (v.snapshotTablesEqual() && v.imageCheckClean()) {
              migration.copiesVerified = v;
              migration.journal(Incoming.COPIES_VERIFIED, String.join("; ", v.details()));
              replyTo.tell(new DestinationProtocol.CopiesVerified());
            } else {
              replyTo.tell(
                  new DestinationProtocol.Failed(
                      "the copies differ from the source: " + String.join("; ", v.details())));
            }
          }
          return migration.waiting();
        });
  }

  /** Overlay strategy: fresh overlays over the copies, immediately before the migration. */
  Behavior<Message> creatingOverlays(
      List<DestinationProtocol.OverlaySpec> specs, ActorRef<DestinationProtocol.Reply> replyTo) {
    migration.act(() -> new OverlayOps(services).createOnDestination(specs), OverlaysReady::new);
    return migration.awaiting(
        OverlaysReady.class,
        m -> {
          if (m.failed()) {
            replyTo.tell(
                new DestinationProtocol.Failed(
                    "creating the overlays failed: " + MigrationFailure.reason(m.error())));
          } else {
            migration.journal(Incoming.OVERLAYS_CREATED, null);
            replyTo.tell(new DestinationProtocol.OverlaysCreated());
          }
          return migration.waiting();
        });
  }

  /**
   * Overlay strategy: the VM runs here on its overlays; merge them back into the copied files, then
   * prove the result (snapshot tables, check, metadata, open inodes). The migration is not
   * acknowledged before this has finished: until then only the journal holds the snapshot XML, and
   * a restart from a definition naming the original file would roll the disk back.
   */
  Behavior<Message> merging(
      List<DestinationProtocol.OverlaySpec> specs, ActorRef<DestinationProtocol.Reply> replyTo) {
    migration.journal(Incoming.MERGING, null);
    ctx.spawnAnonymous(
        OverlayMergeActor.create(
            manifest.vm(),
            specs,
            services.settings().migration().commitBandwidth(),
            services,
            ctx.messageAdapter(OverlayMergeActor.Result.class, MergeDone::new)));
    return migration
        .state()
        .on(
            MergeDone.class,
            m -> {
              if (m.result() instanceof OverlayMergeActor.Failed f) {
                migration.journal(Incoming.MERGE_FAILED, f.reason());
                replyTo.tell(
                    new DestinationProtocol.Failed("merging the overlays failed: " + f.reason()));
                return onChain(specs);
              }
              migration.journal(Incoming.MERGED, null);
              migration.blocking(
                  () -> DestinationVerification.verifyMerged(host, manifest), MergeVerified::new);
              return Behaviors.same();
            })
        .on(
            MergeVerified.class,
            m -> {
              if (m.failed()) {
                replyTo.tell(
                    new DestinationProtocol.Failed(
                        "verifying after the merge failed: " + MigrationFailure.reason(m.error())));
                return migration.running();
              }
              Verification v = m.verification();
              migration.journal(
                  v.passed() ? Incoming.VERIFIED : Incoming.VERIFICATION_FAILED,
                  String.join("; ", v.details()));
              if (v.passed()) {
                replyTo.tell(
                    new DestinationProtocol.Merged(
                        v, migration.resumedAt, System.currentTimeMillis()));
              } else {
                replyTo.tell(
                    new DestinationProtocol.Failed(
                        "after the merge: " + String.join("; ", v.details())));
              }
              return migration.running();
            })
        .on(Lifecycle.class, m -> Behaviors.same())
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  Behavior<Message> finishRecovery(DestinationProtocol.Reply reply) {
    if (reply instanceof DestinationProtocol.Merged) {
      return migration.adopting("merged after a restart");
    }
    ctx.getLog().error("{}: finishing the merge after a restart failed: {}", manifest.vm(), reply);
    return Behaviors.stopped();
  }

  /**
   * The merge failed; the VM runs here on the consistent two-file chain. A new merge may be asked.
   */
  Behavior<Message> onChain(List<DestinationProtocol.OverlaySpec> specs) {
    return migration
        .state()
        .on(Recovered.class, m -> migration.recovery, m -> finishRecovery(m.reply()))
        .on(
            DestinationProtocol.MergeOverlays.class,
            mergeOverlays -> merging(specs, mergeOverlays.replyTo()))
        .on(
            DestinationProtocol.Release.class,
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
