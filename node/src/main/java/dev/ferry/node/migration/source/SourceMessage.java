package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.DiskSyncActor;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.JobStats;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.migration.overlay.OverlayMergeActor;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationPhase;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * An outgoing migration's own messages: timers, answers from the destination, the disk actors and
 * libvirt, and the typed result of every blocking step ({@link Step}). None crosses the network.
 */
sealed interface SourceMessage extends SourceMigration.Command {

  record Tick() implements SourceMessage {}

  record PhaseTimeout(MigrationPhase phase) implements SourceMessage {}

  record AgentListing(Set<ActorRef<AgentProtocol.Command>> agents) implements SourceMessage {}

  record RetryContact() implements SourceMessage {}

  record FromTarget(DestinationProtocol.Reply reply) implements SourceMessage {}

  record TargetGone() implements SourceMessage {}

  /** A disk actor stopped; unexpected unless we stopped it (then it is no longer in the facts). */
  record DiskStopped(String target) implements SourceMessage {}

  record Disk(DiskSyncActor.Event event) implements SourceMessage {}

  record SourceEvent(LifecycleEvent event) implements SourceMessage {}

  /** libvirt's migration call on this host returned, with the error it raised if any. */
  record MemoryDone(Throwable error) implements SourceMessage {}

  /** libvirt's migration call on this host had not returned in time after the resume. */
  record ConfirmWaitOver() implements SourceMessage {}

  /** Whether the source's domain is gone (libvirt's confirm phase undefined it). */
  record SourceDomainChecked(boolean gone) implements SourceMessage {}

  /**
   * What the source found on (and did through) the libvirt of a destination whose agent stopped.
   */
  record PeerLooked(PeerTakeover.Found found, Throwable error) implements Step {}

  /** A fault test's hold before the final sync is over. */
  record FaultTestHoldOver() implements SourceMessage {}

  /** Try the destination's libvirt again. */
  record RetryTakeover() implements SourceMessage {}

  /** The source domain's state once the wait for libvirt's confirm phase ran out. */
  record SourceStateAtConfirm(DomainState state, Throwable error) implements Step {}

  /** The source domain, found running beside the verified destination, was paused. */
  record SourcePaused(Throwable error) implements Step {}

  record RecheckSourceDomain() implements SourceMessage {}

  record JobPolled(JobStats stats, Throwable error) implements SourceMessage {}

  record PollJob() implements SourceMessage {}

  record PollShutdown() implements SourceMessage {}

  record RetryQuery() implements SourceMessage {}

  record Queried(AgentProtocol.IncomingStatus status) implements SourceMessage {}

  record MergedBack(OverlayMergeActor.Result result) implements SourceMessage {}

  /**
   * What a blocking step brings back to the actor thread: one record per step, carrying either its
   * value or the error it failed with. A step reads only immutable inputs and writes no field.
   */
  sealed interface Step extends SourceMessage {
    Throwable error();

    default boolean failed() {
      return error() != null;
    }
  }

  /** Preflight read the VM into a manifest, and QEMU's block nodes when a delta needs them. */
  record Preflighted(
      Manifest manifest, Map<String, String> blockNodes, List<String> notes, Throwable error)
      implements Step {}

  /** How many dirty bitmaps were added before the step ended (also when it failed). */
  record BitmapsAdded(int added, Throwable error) implements Step {}

  /** The VM directories (minus the writable disks) arrived on the destination. */
  record DirectoryCopied(Throwable error) implements Step {}

  /** Cold strategy: the ACPI power button was pressed. */
  record ShutdownRequested(Throwable error) implements Step {}

  /** Cold strategy: the domain's state while waiting for it to power off. */
  record ShutdownPolled(DomainState state, Throwable error) implements Step {}

  /** Cold strategy: this host's persistent definition, for the destination to define. */
  record DefinitionRead(String xml, Throwable error) implements Step {}

  /** Cold strategy: the shut-off definition here was removed. */
  record SourceUndefined(boolean undefined, Throwable error) implements Step {}

  /** Overlay strategy: every writable disk is frozen under its temporary overlay. */
  record OverlaysCreated(Throwable error) implements Step {}

  record MetadataDropped(Throwable error) implements Step {}

  /** After the acknowledgement: the source's files that were removed. */
  record SourceCleanedUp(List<String> removed, Throwable error) implements Step {}

  /** Rollback on this host: what was undone (bitmaps, metadata, resume), in order. */
  record UndoneOnSource(List<String> undone, Throwable error) implements Step {}

  /** Cold rollback: whether the guest was started again here (false: it never powered off). */
  record SourceRestarted(boolean started, Throwable error) implements Step {}

  /** Migrated back: bitmaps removed, metadata restored, resumed here. */
  record ResumedHere(Throwable error) implements Step {}
}
