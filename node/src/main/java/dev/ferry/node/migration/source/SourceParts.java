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
 * The collaborators of one outgoing migration, set once and shared by the coordinator and every
 * flow: the actor's context and timers, the migration's facts, the host's ports and the adapters
 * through which the destination and the disk-sync actors answer.
 */
abstract class SourceParts {
  final ActorContext<Command> ctx;
  final TimerScheduler<Command> timers;
  final SourceFacts run;
  final HostPorts services;
  final SourceHost source;
  final MigrationJournal journal;
  final ActorRef<DestinationProtocol.Reply> targetReplies;
  final ActorRef<DiskSyncActor.Event> diskEvents;

  SourceParts(
      ActorContext<Command> ctx,
      TimerScheduler<Command> timers,
      SourceFacts run,
      HostPorts services) {
    this.ctx = ctx;
    this.timers = timers;
    this.run = run;
    this.services = services;
    this.source = new SourceHost(services);
    this.journal = services.journal();
    this.targetReplies =
        ctx.messageAdapter(DestinationProtocol.Reply.class, SourceMessage.FromTarget::new);
    this.diskEvents = ctx.messageAdapter(DiskSyncActor.Event.class, SourceMessage.Disk::new);
  }

  /** The same collaborators, for a flow of the migration that owns them. */
  SourceParts(SourceParts owner) {
    this.ctx = owner.ctx;
    this.timers = owner.timers;
    this.run = owner.run;
    this.services = owner.services;
    this.source = owner.source;
    this.journal = owner.journal;
    this.targetReplies = owner.targetReplies;
    this.diskEvents = owner.diskEvents;
  }
}
