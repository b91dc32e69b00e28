package dev.ferry.node.migration.destination;

import dev.ferry.node.migration.destination.DestinationMessage.Verified;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.Verification;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * What the destination proves before a VM counts as arrived, as functions of the host and the
 * manifest: they run on the blocking dispatcher and return results; they touch no actor state.
 */
final class DestinationVerification {
  private DestinationVerification() {}

  /**
   * Suspend-sync, with the VM paused here: the files against the manifest (snapshot tables, check,
   * the bitmaps the source left), the libvirt snapshot metadata (redefined early, while the source
   * synced, or now), then the resume and the open-inode check. Every step is paused time, so each
   * one's cost goes into the details. {@code onResumed} runs right after the resume (the journal).
   */
  static Verified verifyAndResume(
      DestinationHost host,
      Manifest manifest,
      List<DestinationProtocol.DiskBitmap> bitmaps,
      CompletableFuture<Verification> earlyRedefine,
      Runnable onResumed)
      throws IOException {
    long t0 = System.nanoTime();
    Verification v = host.verifyFiles(manifest, bitmaps);
    long t1 = System.nanoTime();
    if (!v.snapshotTablesEqual() || !v.imageCheckClean()) {
      return new Verified(v, false, 0, null);
    }
    Verification meta =
        earlyRedefine == null ? null : earlyRedefine.exceptionally(e -> null).join();
    if (meta == null) {
      meta = host.redefine(manifest, Verification.none());
    }
    v = withMetadata(v, meta);
    long t2 = System.nanoTime();
    if (!v.libvirtSnapshotsEqual()) {
      return new Verified(v, false, 0, null);
    }
    host.resume(manifest.vm());
    long t3 = System.nanoTime();
    long resumedAt = System.currentTimeMillis();
    onResumed.run();
    Verification checked = host.inodeCheck(manifest, v);
    List<String> details = new ArrayList<>(checked.details());
    details.add(
        String.format(
            "paused-time steps here: files %d ms, snapshot metadata %d ms, resume %d ms",
            (t1 - t0) / 1_000_000, (t2 - t1) / 1_000_000, (t3 - t2) / 1_000_000));
    return new Verified(
        new Verification(
            checked.snapshotTablesEqual(),
            checked.imageCheckClean(),
            checked.libvirtSnapshotsEqual(),
            checked.openInodeMatches(),
            details),
        true,
        resumedAt,
        null);
  }

  /** Overlay strategy, with the VM running here: the merged files, metadata, open inodes. */
  static Verification verifyMerged(DestinationHost host, Manifest manifest) throws IOException {
    Verification v = host.verifyMerged(manifest);
    Verification meta = host.redefine(manifest, Verification.none());
    return host.inodeCheck(manifest, withMetadata(v, meta));
  }

  /** The files' verdicts with the metadata's verdict and both sets of details. */
  private static Verification withMetadata(Verification files, Verification meta) {
    List<String> details = new ArrayList<>(files.details());
    details.addAll(meta.details());
    return new Verification(
        files.snapshotTablesEqual(),
        files.imageCheckClean(),
        meta.libvirtSnapshotsEqual(),
        false,
        details);
  }
}
