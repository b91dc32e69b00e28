package dev.ferry.node.migration.destination;

import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.destination.DestinationMigration.Message;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The collaborators of one incoming migration, set once and shared by the coordinator and every
 * flow: the actor's context and timers, the manifest, the source to answer, the host's ports.
 */
abstract class DestinationParts {
  final ActorContext<Message> ctx;
  final TimerScheduler<Message> timers;
  final Manifest manifest;
  final ActorRef<DestinationProtocol.Reply> source;
  final HostPorts services;
  final DestinationHost host;
  final MigrationJournal journal;

  DestinationParts(
      ActorContext<Message> ctx,
      TimerScheduler<Message> timers,
      Manifest manifest,
      ActorRef<DestinationProtocol.Reply> source,
      HostPorts services) {
    this.ctx = ctx;
    this.timers = timers;
    this.manifest = manifest;
    this.source = source;
    this.services = services;
    this.host = new DestinationHost(services);
    this.journal = services.journal();
  }

  /** The same collaborators, for a flow of the migration that owns them. */
  DestinationParts(DestinationParts owner) {
    this.ctx = owner.ctx;
    this.timers = owner.timers;
    this.manifest = owner.manifest;
    this.source = owner.source;
    this.services = owner.services;
    this.host = owner.host;
    this.journal = owner.journal;
  }
}
