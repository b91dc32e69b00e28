package dev.ferry.node.image;

import java.util.List;
import java.util.Optional;

/**
 * What {@code qemu-img info --output=json} says about one image.
 *
 * @param filename the file as qemu-img named it
 * @param format its format
 * @param virtualSize guest-visible size in bytes
 * @param actualSize bytes allocated on the host file system
 * @param clusterSize qcow2 cluster size
 * @param backingFilename backing file as written in the header, if any
 * @param snapshots the internal snapshot table (empty for raw)
 * @param bitmaps names of persistent dirty bitmaps stored in the image
 * @param compat qcow2 compatibility level ("1.1" = v3, needed for persistent bitmaps)
 * @param corrupt whether qcow2 flags the image as corrupt
 */
public record ImageInfo(
    String filename,
    ImageFormat format,
    long virtualSize,
    long actualSize,
    Optional<Long> clusterSize,
    Optional<String> backingFilename,
    List<ImageSnapshot> snapshots,
    List<String> bitmaps,
    Optional<String> compat,
    boolean corrupt) {

  public ImageInfo {
    snapshots = List.copyOf(snapshots);
    bitmaps = List.copyOf(bitmaps);
  }

  /** qcow2 v3 supports persistent dirty bitmaps. */
  public boolean supportsPersistentBitmaps() {
    return format == ImageFormat.QCOW2 && compat.map("1.1"::equals).orElse(false);
  }
}
