package dev.ferry.protocol;

import java.util.List;

/**
 * What the destination proved before the VM was acknowledged there.
 *
 * @param snapshotTablesEqual every disk's {@code qemu-img info} snapshot table equals the manifest
 * @param imageCheckClean {@code qemu-img check} found no errors, leaks or corruptions
 * @param libvirtSnapshotsEqual libvirt's snapshot list and current snapshot equal the manifest
 * @param openInodeMatches after the resume, the inode QEMU has open is the inode at each path
 * @param details one line per check, for humans
 */
public record Verification(
    boolean snapshotTablesEqual,
    boolean imageCheckClean,
    boolean libvirtSnapshotsEqual,
    boolean openInodeMatches,
    List<String> details)
    implements CborSerializable {

  public Verification {
    details = List.copyOf(details);
  }

  public static Verification none() {
    return new Verification(false, false, false, false, List.of());
  }

  public boolean passed() {
    return snapshotTablesEqual && imageCheckClean && libvirtSnapshotsEqual && openInodeMatches;
  }
}
