package dev.ferry.node.libvirt;

import java.util.List;
import java.util.Optional;

/**
 * One {@code <disk>} of a domain definition.
 *
 * @param target guest device name ({@code vda}, {@code hdc})
 * @param device {@code disk}, {@code cdrom} or {@code floppy}
 * @param sourceType {@code file}, {@code block}, {@code network}, ...
 * @param sourceFile the file, for file-backed disks with a medium
 * @param driverType image format as libvirt names it ({@code qcow2}, {@code raw})
 * @param readOnly {@code <readonly/>}
 * @param shareable {@code <shareable/>}
 * @param bus {@code virtio}, {@code ide}, ...
 * @param backingFiles the {@code <backingStore>} chain libvirt knows, top first (live XML only)
 */
public record DiskDefinition(
    String target,
    String device,
    String sourceType,
    Optional<String> sourceFile,
    Optional<String> driverType,
    boolean readOnly,
    boolean shareable,
    String bus,
    List<String> backingFiles) {

  public DiskDefinition {
    backingFiles = List.copyOf(backingFiles);
  }

  /** A disk the guest can write to, backed by a file: what a migration must move and sync. */
  public boolean writableFile() {
    return "file".equals(sourceType)
        && sourceFile.isPresent()
        && !readOnly
        && !"cdrom".equals(device);
  }
}
