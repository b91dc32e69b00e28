package dev.ferry.protocol;

import java.util.List;

/**
 * One disk as the source saw it before anything moved.
 *
 * @param target guest device ({@code vda})
 * @param path the file (same path on every host)
 * @param format {@code qcow2} or {@code raw}
 * @param writable the guest writes to it (read-only disks are copied, never synced)
 * @param virtualSize guest-visible size
 * @param fileSize length of the file
 * @param allocatedBytes bytes allocated on the host file system (what a sparse copy moves)
 * @param snapshots the internal snapshot table
 * @param backingChain backing files, top first (copied with the VM directory, never written)
 */
public record ManifestDisk(
    String target,
    String path,
    String format,
    boolean writable,
    long virtualSize,
    long fileSize,
    long allocatedBytes,
    List<SnapshotEntry> snapshots,
    List<String> backingChain)
    implements CborSerializable {

  public ManifestDisk {
    snapshots = List.copyOf(snapshots);
    backingChain = List.copyOf(backingChain);
  }
}
