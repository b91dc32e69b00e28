package dev.ferry.protocol;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What the source had before the migration started, and what the destination must prove it has
 * before the VM may resume there. It is journaled first, so a restarted agent can finish or undo.
 *
 * @param directories the VM's own directories on the source (those of its writable disks, held by
 *     no other domain): created on the destination, copied
 * @param files every file of this VM on the source that the migration copies and, once the
 *     destination acknowledged, removes: listed one by one, so that nothing else is ever deleted
 * @param snapshots libvirt snapshot metadata, parents before children
 * @param currentSnapshot the current snapshot, or empty
 * @param ancillaryBytes bytes of the VM directories other than the writable disks
 * @param transientDomain the domain has no persistent definition (OpenNebula creates its domains
 *     with {@code virsh create}); the move leaves none on either host, since OpenNebula's shutdown
 *     and cancel wait until no definition is left
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
    long ancillaryBytes,
    List<String> files,
    boolean transientDomain)
    implements CborSerializable {

  /** A persistent domain's manifest. */
  public Manifest(
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
      long ancillaryBytes,
      List<String> files) {
    this(
        migrationId,
        vm,
        uuid,
        sourceHost,
        destinationHost,
        memoryKiB,
        vcpus,
        disks,
        snapshots,
        currentSnapshot,
        directories,
        ancillaryBytes,
        files,
        false);
  }

  public Manifest {
    disks = List.copyOf(disks);
    snapshots = List.copyOf(snapshots);
    directories = List.copyOf(directories);
    files = files == null ? List.of() : List.copyOf(files); // absent from older journals
  }

  /**
   * Backing files and read-only disks outside the VM's own directories (a base image other VMs may
   * use): copied only if the destination lacks them, checked identical if it has them, never
   * removed.
   */
  public List<String> sharedFiles() {
    return sharedFiles(disks, directories);
  }

  /** {@link #sharedFiles()} of these disks and own directories. */
  public static List<String> sharedFiles(List<ManifestDisk> disks, List<String> directories) {
    List<String> shared = new ArrayList<>();
    for (ManifestDisk d : disks) {
      List<String> candidates = new ArrayList<>(d.backingChain());
      if (!d.writable()) {
        candidates.add(d.path());
      }
      for (String f : candidates) {
        if (!inDirectories(f, directories) && !shared.contains(f)) {
          shared.add(f);
        }
      }
    }
    return shared;
  }

  /** Whether {@code file} lies in one of the VM's own directories. */
  public boolean isOwn(String file) {
    return inDirectories(file, directories);
  }

  /** Whether {@code file} lies below one of {@code directories}. */
  public static boolean inDirectories(String file, List<String> directories) {
    Path p = Path.of(file).normalize();
    return directories.stream().anyMatch(d -> p.startsWith(Path.of(d)));
  }

  public List<ManifestDisk> writableDisks() {
    return disks.stream().filter(ManifestDisk::writable).toList();
  }

  /** Bytes a sparse copy of everything moves (writable disks plus the rest of the directories). */
  public long totalBytes() {
    return writableDisks().stream().mapToLong(ManifestDisk::allocatedBytes).sum() + ancillaryBytes;
  }
}
