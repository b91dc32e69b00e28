package dev.ferry.protocol;

import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The conversation between a source's migration and its destination's target actor (one per
 * incoming VM). The source drives; the target prepares, watches the switchover, verifies and
 * resumes, and cleans up after itself.
 */
public final class DestinationProtocol {
  private DestinationProtocol() {}

  /** Messages to a target actor. */
  public sealed interface Command extends CborSerializable {}

  /** Watch the incoming memory migration and say when the VM is paused here, after Finish. */
  public record ArmSwitchover(ActorRef<Reply> replyTo) implements Command {}

  /**
   * The files match the source's now; verify them, remove the dirty bitmaps named, redefine the
   * snapshot metadata, resume, check the open inodes.
   *
   * @param bitmaps disk path to the persistent bitmap the delta carried along (to be removed)
   */
  public record FinalSynced(List<DiskBitmap> bitmaps, ActorRef<Reply> replyTo) implements Command {}

  /** A persistent dirty bitmap left in a file by the bitmap delta. */
  public record DiskBitmap(String path, String bitmap) implements CborSerializable {}

  /** The migration failed or was cancelled before the switchover: remove what we created. */
  public record Abort(String reason, ActorRef<Reply> replyTo) implements Command {}

  /** Verification failed after the switchover: send the paused VM back to the source. */
  public record MigrateBack(String sourceHost, ActorRef<Reply> replyTo) implements Command {}

  /** Overlay strategy: create fresh overlays over the copied files, just before migrating. */
  public record CreateOverlays(List<OverlaySpec> overlays, ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * A temporary overlay over one disk.
   *
   * @param overlay the overlay file (same path on both hosts)
   * @param base the disk's own file, frozen under the overlay
   * @param baseFormat {@code qcow2} or {@code raw}
   * @param virtualSize the overlay's size, the disk's virtual size
   * @param shallow the base has a backing file of its own: commit into the base only (a default
   *     commit would merge into the deepest image and silently break snapshots)
   */
  public record OverlaySpec(
      String target,
      String overlay,
      String base,
      String baseFormat,
      long virtualSize,
      boolean shallow)
      implements CborSerializable {}

  /** Overlay strategy: verify the copied frozen files against the manifest. */
  public record VerifyCopies(ActorRef<Reply> replyTo) implements Command {}

  /** Overlay strategy: the VM runs here now; merge the overlays, verify, and report. */
  public record MergeOverlays(List<OverlaySpec> overlays, ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * Cold strategy: the copies are verified and the guest is shut off on the source. Define the
   * domain from the source's persistent XML, redefine the snapshot metadata, start it, check the
   * open inodes. On any failure the domain is not left running here.
   */
  public record StartCold(String domainXml, ActorRef<Reply> replyTo) implements Command {}

  /** The source is done with this migration; the target can stop. */
  public record Release(String outcome) implements Command {}

  /** Replies from a target. */
  public sealed interface Reply extends CborSerializable {}

  public record Ready(String migrationId, ActorRef<Command> target) implements Reply {}

  public record Refused(String migrationId, String reason) implements Reply {}

  public record Armed() implements Reply {}

  /** The VM is paused here after libvirt's Finish phase: the source's files are final. */
  public record DestinationPaused(long atMillis) implements Reply {}

  public record Resumed(Verification verification, long resumedAtMillis) implements Reply {}

  /** Verification failed; the VM is still paused here. */
  public record VerificationFailed(String reason, Verification verification) implements Reply {}

  public record Aborted(List<String> removed) implements Reply {}

  public record MigratedBack(long atMillis) implements Reply {}

  public record CopiesVerified() implements Reply {}

  public record OverlaysCreated() implements Reply {}

  /** Overlays merged, metadata redefined, checks passed: the migration may be acknowledged. */
  public record Merged(Verification verification, long resumedAtMillis, long mergedAtMillis)
      implements Reply {}

  /** Cold strategy: defined, metadata redefined, started and checked here. */
  public record ColdStarted(Verification verification, long startedAtMillis) implements Reply {}

  public record Failed(String reason) implements Reply {}
}
