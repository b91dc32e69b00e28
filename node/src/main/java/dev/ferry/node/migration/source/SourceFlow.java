package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.DiskSyncActor;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.DestinationProtocol;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * What every flow of an outgoing migration works with: the coordinator (shared handling, the other
 * flows), the actor's context and timers, the migration's facts and the host's collaborators. A
 * flow keeps no state of its own: its states are methods, and what they learn goes into the facts.
 */
abstract class SourceFlow {
  final SourceMigration migration;
  final ActorContext<Command> ctx;
  final TimerScheduler<Command> timers;
  final SourceFacts run;
  final HostPorts services;
  final SourceHost source;
  final MigrationJournal journal;
  final ActorRef<DestinationProtocol.Reply> targetReplies;
  final ActorRef<DiskSyncActor.Event> diskEvents;

  SourceFlow(SourceMigration migration) {
    this.migration = migration;
    this.ctx = migration.ctx;
    this.timers = migration.timers;
    this.run = migration.run;
    this.services = migration.services;
    this.source = migration.source;
    this.journal = migration.journal;
    this.targetReplies = migration.targetReplies;
    this.diskEvents = migration.diskEvents;
  }
}
