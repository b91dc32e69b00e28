package dev.ferry.node.migration.overlay;

import dev.ferry.node.host.HostFiles;
import dev.ferry.node.image.ImageFormat;
import dev.ferry.node.image.ImageTool;
import dev.ferry.node.libvirt.BlockJob;
import dev.ferry.node.libvirt.DiskDefinition;
import dev.ferry.node.libvirt.DomainDefinition;
import dev.ferry.node.libvirt.Hypervisor;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.protocol.DestinationProtocol.OverlaySpec;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The overlay strategy's operations on one host (docs/overlay.md): freeze every writable disk under
 * a temporary external overlay, and later merge each overlay back into its disk (active block
 * commit with pivot) so the domain runs on its original files again.
 */
public final class OverlayOps {
  private final Hypervisor hypervisor;
  private final ImageTool images;
  private final HostFiles files;

  /** Overlay operations with the host's ports. */
  public OverlayOps(HostPorts s) {
    this(s.hypervisor(), s.images(), s.files());
  }

  OverlayOps(Hypervisor hypervisor, ImageTool images, HostFiles files) {
    this.hypervisor = hypervisor;
    this.images = images;
    this.files = files;
  }

  /**
   * One overlay per writable disk, named so that nothing mistakes it for a disk: a hidden file that
   * no {@code disk.*} glob or whole-directory copy of ours picks up.
   */
  public static List<OverlaySpec> plan(Manifest m) {
    List<OverlaySpec> specs = new ArrayList<>();
    for (ManifestDisk d : m.writableDisks()) {
      Path disk = Path.of(d.path());
      Path overlay =
          disk.getParent()
              .resolve(".ferry-overlay-" + m.migrationId() + "-" + d.target() + ".qcow2");
      specs.add(
          new OverlaySpec(
              d.target(),
              overlay.toString(),
              d.path(),
              d.format(),
              d.virtualSize(),
              !d.backingChain().isEmpty()));
    }
    return specs;
  }

  /**
   * The exclude pattern (rsync) that keeps overlays out of directory copies. Unanchored: an overlay
   * lies next to its disk, which may be in a subdirectory of the VM directory.
   */
  public static final String EXCLUDE = ".ferry-overlay-*";

  /**
   * Creates every overlay in one atomic, disk-only external snapshot without libvirt metadata.
   * libvirt refuses an overlay file that already exists, so a leftover of ours is removed first.
   */
  public void createOnSource(String vm, Manifest m, List<OverlaySpec> specs) throws IOException {
    StringBuilder xml =
        new StringBuilder("<domainsnapshot><name>ferry-" + m.migrationId() + "</name><disks>");
    for (ManifestDisk d : m.disks()) {
      Optional<OverlaySpec> spec =
          specs.stream().filter(s -> s.target().equals(d.target())).findFirst();
      if (spec.isPresent()) {
        Files.deleteIfExists(files.local(spec.get().overlay()));
        xml.append("<disk name='")
            .append(d.target())
            .append("' snapshot='external'><driver type='qcow2'/>")
            .append("<source file='")
            .append(spec.get().overlay())
            .append("'/></disk>");
      } else {
        xml.append("<disk name='").append(d.target()).append("' snapshot='no'/>");
      }
    }
    xml.append("</disks></domainsnapshot>");
    hypervisor.createSnapshot(
        vm,
        xml.toString(),
        Hypervisor.SnapshotCreate.DISK_ONLY,
        Hypervisor.SnapshotCreate.NO_METADATA,
        Hypervisor.SnapshotCreate.ATOMIC);
  }

  /**
   * Creates the destination's overlays fresh, right before the migration: an existing file would be
   * accepted by the incremental storage migration and show through to the guest (K1).
   */
  public void createOnDestination(List<OverlaySpec> specs) throws IOException {
    for (OverlaySpec s : specs) {
      Files.deleteIfExists(files.local(s.overlay()));
      images.create(
          Path.of(s.overlay()),
          ImageFormat.QCOW2,
          s.virtualSize(),
          Optional.of(new ImageTool.Backing(s.base(), ImageFormat.fromQemuName(s.baseFormat()))));
    }
  }

  /** Whether the domain's disk {@code target} currently runs on the overlay. */
  public boolean onOverlay(String vm, OverlaySpec s) {
    return source(hypervisor.definition(vm, false), s.target()).equals(Optional.of(s.overlay()));
  }

  /**
   * Starts the active commit of the overlay into its base (shallow when the base has a backing
   * file).
   */
  public void startCommit(String vm, OverlaySpec s, long bandwidth) {
    if (s.shallow()) {
      hypervisor.blockCommit(
          vm,
          s.target(),
          s.base(),
          bandwidth,
          Hypervisor.BlockCommit.ACTIVE,
          Hypervisor.BlockCommit.SHALLOW);
    } else {
      hypervisor.blockCommit(vm, s.target(), s.base(), bandwidth, Hypervisor.BlockCommit.ACTIVE);
    }
  }

  public Optional<BlockJob> job(String vm, OverlaySpec s) {
    return hypervisor.blockJob(vm, s.target());
  }

  public void pivot(String vm, OverlaySpec s) {
    hypervisor.blockJobAbort(vm, s.target(), true);
  }

  public void abortCommit(String vm, OverlaySpec s) {
    hypervisor.blockJobAbort(vm, s.target(), false);
  }

  /**
   * After the pivot: both the live and the persistent definition name the original file again (a
   * restart from either would otherwise use the overlay), then the overlay goes.
   */
  public void finish(String vm, OverlaySpec s) throws IOException {
    Optional<String> live = source(hypervisor.definition(vm, false), s.target());
    Optional<String> persistent = source(hypervisor.definition(vm, true), s.target());
    if (!live.equals(Optional.of(s.base())) || !persistent.equals(Optional.of(s.base()))) {
      throw new MigrationFailure(
          s.target()
              + " still points at "
              + live.orElse("?")
              + " (live) and "
              + persistent.orElse("?")
              + " (persistent) after the pivot, not at "
              + s.base());
    }
    Files.deleteIfExists(files.local(s.overlay()));
  }

  private static Optional<String> source(DomainDefinition def, String target) {
    return def.disks().stream()
        .filter(d -> d.target().equals(target))
        .findFirst()
        .flatMap(DiskDefinition::sourceFile);
  }
}
