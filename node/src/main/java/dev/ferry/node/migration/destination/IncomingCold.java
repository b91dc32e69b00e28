package dev.ferry.node.migration.destination;

import dev.ferry.node.journal.JournalEntry.Incoming;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.destination.DestinationMessage.ColdStarted;
import dev.ferry.node.migration.destination.DestinationMessage.IdleTimeout;
import dev.ferry.node.migration.destination.DestinationMigration.Message;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Verification;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The cold strategy on the destination: with the copies verified, define the guest, redefine its
 * snapshots, boot it and check it.
 */
final class IncomingCold extends DestinationFlow {

  IncomingCold(DestinationMigration migration) {
    super(migration);
  }

  /**
   * Cold strategy: the guest is shut off on the source and its copies here were verified; define,
   * redefine the snapshots, boot, check. A failure leaves the domain defined but not running, for
   * the source's Abort to remove.
   */
  Behavior<Message> startingCold(String domainXml, ActorRef<DestinationProtocol.Reply> replyTo) {
    Verification copies = migration.copiesVerified;
    if (copies == null) {
      replyTo.tell(
          new DestinationProtocol.Failed(
              "refusing to start " + manifest.vm() + ": its copies were not verified here"));
      return Behaviors.same();
    }
    timers.cancel(IdleTimeout.class);
    migration.journal(Incoming.COLD_STARTING, null);
    migration.blocking(() -> host.startCold(manifest, domainXml, copies), ColdStarted::new);
    return migration
        .state()
        .on(
            ColdStarted.class,
            m -> {
              if (m.failed()) {
                String why =
                    "starting "
                        + manifest.vm()
                        + " on "
                        + services.settings().host()
                        + " failed: "
                        + MigrationFailure.reason(m.error());
                migration.journal(Incoming.COLD_START_FAILED, why);
                replyTo.tell(new DestinationProtocol.Failed(why));
                return migration.waiting();
              }
              Verification v = m.verification();
              migration.journal(Incoming.VERIFIED, String.join("; ", v.details()));
              replyTo.tell(new DestinationProtocol.ColdStarted(v, System.currentTimeMillis()));
              return migration.running();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }
}
