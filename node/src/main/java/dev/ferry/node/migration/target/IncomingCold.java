package dev.ferry.node.migration.target;

import dev.ferry.node.journal.JournalEntry.Incoming;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.target.MigrationTargetActor.Message;
import dev.ferry.node.migration.target.TargetMessage.ColdStarted;
import dev.ferry.node.migration.target.TargetMessage.IdleTimeout;
import dev.ferry.protocol.TargetProtocol;
import dev.ferry.protocol.Verification;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The cold strategy on the destination: with the copies verified, define the guest, redefine its
 * snapshots, boot it and check it.
 */
final class IncomingCold extends TargetFlow {

  IncomingCold(MigrationTargetActor target) {
    super(target);
  }

  /**
   * Cold strategy: the guest is shut off on the source and its copies here were verified; define,
   * redefine the snapshots, boot, check. A failure leaves the domain defined but not running, for
   * the source's Abort to remove.
   */
  Behavior<Message> startingCold(String domainXml, ActorRef<TargetProtocol.Reply> replyTo) {
    Verification copies = target.copiesVerified;
    if (copies == null) {
      replyTo.tell(
          new TargetProtocol.Failed(
              "refusing to start " + manifest.vm() + ": its copies were not verified here"));
      return Behaviors.same();
    }
    timers.cancel(IdleTimeout.class);
    target.journal(Incoming.COLD_STARTING, null);
    target.blocking(() -> host.startCold(manifest, domainXml, copies), ColdStarted::new);
    return Behaviors.receive(Message.class)
        .onMessage(
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
                target.journal(Incoming.COLD_START_FAILED, why);
                replyTo.tell(new TargetProtocol.Failed(why));
                return target.waiting();
              }
              Verification v = m.verification();
              target.journal(Incoming.VERIFIED, String.join("; ", v.details()));
              replyTo.tell(new TargetProtocol.ColdStarted(v, System.currentTimeMillis()));
              return target.running();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }
}
