package dev.ferry.protocol;

import java.util.List;

/**
 * What the source had before the migration started, and what the destination must prove it has
 * before the VM may resume there. It is journaled first, so a restarted agent can finish or undo.
 *
 * @param directories the VM directories on the source (created on the destination, copied)
 * @param snapshots libvirt snapshot metadata, parents before children
 * @param currentSnapshot the current snapshot, or empty
 * @param ancillaryBytes bytes of the VM directories other than the writable disks
 */
public record Manifest(
    String migrationId,
    String vm,
    String uuid,
    String sourceHost,
    String destinationHost,
    long memoryKiB,
    int vcpus,
    List<ManifestDisk> disks,
    List<ManifestSnapshot> snapshots,
    String currentSnapshot,
    List<String> directories,
    long ancillaryBytes)
    implements CborSerializable {

  public Manifest {
    disks = List.copyOf(disks);
    snapshots = List.copyOf(snapshots);
    directories = List.copyOf(directories);
  }

  public List<ManifestDisk> writableDisks() {
    return disks.stream().filter(ManifestDisk::writable).toList();
  }

  /** Bytes a sparse copy of everything moves (writable disks plus the rest of the directories). */
  public long totalBytes() {
    return writableDisks().stream().mapToLong(ManifestDisk::allocatedBytes).sum() + ancillaryBytes;
  }
}
