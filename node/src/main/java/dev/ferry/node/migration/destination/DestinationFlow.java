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
 * What every flow of an incoming migration works with: the coordinator (its few facts, the other
 * flows), the actor's context and timers, the manifest, the source to answer, the host.
 */
abstract class DestinationFlow {
  final DestinationMigration migration;
  final ActorContext<Message> ctx;
  final TimerScheduler<Message> timers;
  final Manifest manifest;
  final ActorRef<DestinationProtocol.Reply> source;
  final HostPorts services;
  final DestinationHost host;
  final MigrationJournal journal;

  DestinationFlow(DestinationMigration migration) {
    this.migration = migration;
    this.ctx = migration.ctx;
    this.timers = migration.timers;
    this.manifest = migration.manifest;
    this.source = migration.source;
    this.services = migration.services;
    this.host = migration.host;
    this.journal = migration.journal;
  }
}
