package dev.ferry.node.migration.destination;

import dev.ferry.node.image.CheckResult;
import dev.ferry.node.image.ImageInfo;
import dev.ferry.node.image.ImageTool;
import dev.ferry.node.migration.FerryBitmaps;
import dev.ferry.node.migration.source.SourceHost;
import dev.ferry.node.validation.DatastorePaths;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.SnapshotEntry;
import dev.ferry.protocol.Verification;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Predicate;

/**
 * The image half of every verification: each disk's internal snapshot table against the manifest's,
 * no Ferry dirty bitmap left in it, and {@code qemu-img check}. The three moments a destination
 * checks files differ only in what is open and how strict the check can be, so they are one loop
 * with a {@link Moment}. Every qemu-img here only reads: they run at once (on the suspend-sync path
 * this is paused time).
 */
final class ImageChecks {
  /** When the files are checked, which decides the lock and how strict the check is. */
  enum Moment {
    /** Suspend-sync: the paused VM's files; QEMU has not activated them, so exclusive and exact. */
    PAUSED("", ImageTool.Access.EXCLUSIVE, false),
    /** Overlay, before the migration: the frozen copies; nothing has them open. */
    COPIED("copied file's ", ImageTool.Access.EXCLUSIVE, false),
    /**
     * Overlay, after the merge, the VM running here: read with {@code -U}. On an image a running
     * QEMU writes, check reports leaks of allocations in flight (seen on the test bed), so leaks
     * are noted but not failed; the exact check was made on the copies before the migration, and
     * the commit only moved clusters.
     */
    MERGED("merged file's ", ImageTool.Access.SHARED, true);

    private final String label;
    private final ImageTool.Access access;
    private final boolean leaksAllowed;

    Moment(String label, ImageTool.Access access, boolean leaksAllowed) {
      this.label = label;
      this.access = access;
      this.leaksAllowed = leaksAllowed;
    }
  }

  private final ImageTool images;
  private final DatastorePaths datastores;
  private final Executor parallel;

  ImageChecks(ImageTool images, DatastorePaths datastores, Executor parallel) {
    this.images = images;
    this.datastores = datastores;
    this.parallel = parallel;
  }

  /**
   * Checks {@code disks} at {@code moment}; {@code checked} says which of them get a {@code
   * qemu-img check} (the others only have their tables and bitmaps read).
   */
  Verification verify(
      List<ManifestDisk> disks,
      Moment moment,
      Predicate<ManifestDisk> checked,
      List<String> details) {
    List<CompletableFuture<ImageInfo>> infos = new ArrayList<>();
    List<CompletableFuture<CheckResult>> checks = new ArrayList<>();
    for (ManifestDisk d : disks) {
      Path path = datastores.confine("disk " + d.target(), d.path());
      infos.add(CompletableFuture.supplyAsync(() -> images.info(path, moment.access), parallel));
      checks.add(
          checked.test(d)
              ? CompletableFuture.supplyAsync(() -> images.check(path, moment.access), parallel)
              : null);
    }
    boolean tables = true;
    boolean clean = true;
    for (int k = 0; k < disks.size(); k++) {
      ManifestDisk d = disks.get(k);
      ImageInfo info = infos.get(k).join();
      List<SnapshotEntry> found = info.snapshots().stream().map(SourceHost::entry).toList();
      if (found.equals(d.snapshots())) {
        details.add(
            d.target()
                + ": "
                + moment.label
                + "snapshot table equal ("
                + d.snapshots().size()
                + " snapshots)");
      } else {
        tables = false;
        details.add(
            d.target()
                + ": "
                + moment.label
                + "snapshot table differs: expected "
                + names(d.snapshots())
                + ", found "
                + names(found));
      }
      List<String> ferry = info.bitmaps().stream().filter(FerryBitmaps::isFerrys).toList();
      if (!ferry.isEmpty()) {
        // a Ferry bitmap left in an image makes a later snapshot-revert fail and QEMU stop
        clean = false;
        details.add(d.target() + ": Ferry dirty bitmaps left in the image: " + ferry);
      }
      if (checks.get(k) != null) {
        CheckResult check = checks.get(k).join();
        boolean ok =
            moment.leaksAllowed
                ? check.checkErrors() == 0 && check.corruptions() == 0
                : check.clean();
        clean &= ok;
        details.add(
            d.target()
                + ": qemu-img check "
                + (moment.access == ImageTool.Access.SHARED ? "-U " : "")
                + check.describe()
                + (moment.leaksAllowed && check.leaks() > 0 ? " (allocations in flight)" : ""));
      }
    }
    return new Verification(tables, clean, false, false, details);
  }

  private static List<String> names(List<SnapshotEntry> entries) {
    return entries.stream().map(e -> e.id() + ":" + e.name()).toList();
  }
}
