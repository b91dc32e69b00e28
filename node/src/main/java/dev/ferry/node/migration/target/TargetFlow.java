package dev.ferry.node.migration.target;

import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.migration.MigrationServices;
import dev.ferry.node.migration.target.MigrationTargetActor.Message;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.TargetProtocol;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * What every flow of an incoming migration works with: the coordinator (its few facts, the other
 * flows), the actor's context and timers, the manifest, the source to answer, the host.
 */
abstract class TargetFlow {
  final MigrationTargetActor target;
  final ActorContext<Message> ctx;
  final TimerScheduler<Message> timers;
  final Manifest manifest;
  final ActorRef<TargetProtocol.Reply> source;
  final MigrationServices services;
  final TargetHost host;
  final MigrationJournal journal;

  TargetFlow(MigrationTargetActor target) {
    this.target = target;
    this.ctx = target.ctx;
    this.timers = target.timers;
    this.manifest = target.manifest;
    this.source = target.source;
    this.services = target.services;
    this.host = target.host;
    this.journal = target.journal;
  }
}
