package dev.ferry.node.migration.destination;

import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.migration.overlay.OverlayMergeActor;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Verification;
import java.util.List;

/**
 * An incoming migration's own messages: libvirt's lifecycle events, timers, the merge's report, and
 * the typed result of every blocking step ({@link Step}). None crosses the network.
 */
sealed interface DestinationMessage extends DestinationMigration.Message {

  record Lifecycle(LifecycleEvent event) implements DestinationMessage {}

  record IdleTimeout() implements DestinationMessage {}

  record PollJob() implements DestinationMessage {}

  /** The source acted on the switchover before the domain showed as paused here: look again. */
  record RecheckPaused() implements DestinationMessage {}

  record MergeDone(OverlayMergeActor.Result result) implements DestinationMessage {}

  /** A reply this actor sent itself while recovering after a restart. */
  record Recovered(DestinationProtocol.Reply reply) implements DestinationMessage {}

  /** A command from the source that failed its check; it was answered and changes nothing. */
  record RefusedCommand(String reason) implements DestinationMessage {}

  /**
   * What a blocking step brings back to the actor thread: one record per step, carrying either its
   * value or the error it failed with.
   */
  sealed interface Step extends DestinationMessage {
    Throwable error();

    default boolean failed() {
      return error() != null;
    }
  }

  /** Preflight here: directories created with our marker, room checked. */
  record Prepared(Throwable error) implements Step {}

  /** Cold strategy: defined, snapshots redefined, booted, checked. */
  record ColdStarted(Verification verification, Throwable error) implements Step {}

  /** Overlay and cold strategies: the exact check of the quiescent copies. */
  record CopiesChecked(Verification verification, Throwable error) implements Step {}

  /** Overlay strategy: fresh overlays over the copies. */
  record OverlaysReady(Throwable error) implements Step {}

  /** The domain's state after libvirt reported it suspended here. */
  record PausedChecked(DomainState state, Throwable error) implements Step {}

  /** An Abort that arrived while the VM was paused here, and the domain's state then. */
  record AbortChecked(DestinationProtocol.Abort abort, DomainState state, Throwable error)
      implements Step {}

  /** Overlay strategy: the merged files, snapshot metadata and open inodes checked. */
  record MergeVerified(Verification verification, Throwable error) implements Step {}

  /**
   * Suspend-sync: the files, metadata and, if they passed, the resume and the open-inode check.
   * {@code resumed} says whether the VM was resumed here (then {@code resumedAt} is when).
   */
  record Verified(Verification verification, boolean resumed, long resumedAt, Throwable error)
      implements Step {}

  /** The directories became the VM's own (marker dropped). */
  record Adopted(Throwable error) implements Step {}

  /** Whether libvirt still runs a job on the domain (the incoming migration's Finish). */
  record JobChecked(boolean active, Throwable error) implements Step {}

  /** Migrated back to the source; what was removed here afterwards. */
  record SentBack(List<String> removed, Throwable error) implements Step {}

  /** What this migration created here, removed. */
  record CleanedUp(List<String> removed, Throwable error) implements Step {}
}
