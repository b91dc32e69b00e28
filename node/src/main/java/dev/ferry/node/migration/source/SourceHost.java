package dev.ferry.node.migration.source;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.node.host.HostFiles;
import dev.ferry.node.image.ImageInfo;
import dev.ferry.node.image.ImageSnapshot;
import dev.ferry.node.image.ImageTool;
import dev.ferry.node.libvirt.DiskDefinition;
import dev.ferry.node.libvirt.DomainDefinition;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.DomainSummary;
import dev.ferry.node.libvirt.DomainXml;
import dev.ferry.node.libvirt.Hypervisor;
import dev.ferry.node.libvirt.SnapshotDefinition;
import dev.ferry.node.migration.DiskUsage;
import dev.ferry.node.migration.FerryBitmaps;
import dev.ferry.node.migration.FileTrees;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.settings.NodeSettings;
import dev.ferry.node.validation.DatastorePaths;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.ManifestSnapshot;
import dev.ferry.protocol.SnapshotEntry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/** The blocking steps a migration runs on its source host. */
public final class SourceHost {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Hypervisor hypervisor;
  private final ImageTool images;
  private final DatastorePaths datastores;
  private final NodeSettings settings;
  private final DiskUsage usage;
  private final HostFiles files;

  /** The source side of a migration on this host, with the host's ports. */
  public SourceHost(HostPorts s) {
    this(s.hypervisor(), s.images(), s.datastores(), s.settings(), s.usage(), s.files());
  }

  SourceHost(
      Hypervisor hypervisor,
      ImageTool images,
      DatastorePaths datastores,
      NodeSettings settings,
      DiskUsage usage,
      HostFiles files) {
    this.hypervisor = hypervisor;
    this.images = images;
    this.datastores = datastores;
    this.settings = settings;
    this.usage = usage;
    this.files = files;
  }

  /**
   * Preflight and manifest: the VM runs here, every disk is a qcow2 or raw file inside the
   * datastores, and what must arrive intact is written down (snapshot tables, libvirt snapshot XML,
   * current snapshot, the VM directories).
   */
  public Manifest manifest(String migrationId, String vm, String destination) throws IOException {
    DomainSummary summary =
        hypervisor
            .lookup(vm)
            .orElseThrow(
                () -> new MigrationFailure("no domain '" + vm + "' on " + settings.host()));
    if (summary.state() != DomainState.RUNNING) {
      throw new MigrationFailure(
          vm
              + " is "
              + summary.state().name().toLowerCase()
              + ", not running: nothing to migrate live");
    }
    DomainDefinition def = hypervisor.definition(vm, false);
    List<String> outside = def.xml().isBlank() ? List.of() : DomainXml.stateOutsideDisks(def.xml());
    if (!outside.isEmpty()) {
      throw new MigrationFailure(
          vm
              + " keeps "
              + String.join(" and ", outside)
              + " outside its disks; Ferry does not move that state yet, and the guest would"
              + " lose it: move this VM cold with its files by other means");
    }
    Optional<Path> openNebulaDir =
        def.xml().isBlank()
            ? Optional.empty()
            : DomainXml.openNebulaVmDirectory(def.xml())
                .map(dir -> datastores.confine("OpenNebula's VM directory", dir));
    List<ManifestDisk> disks = new ArrayList<>();
    Set<Path> directories = new LinkedHashSet<>();
    List<Path> writable = new ArrayList<>();
    for (DiskDefinition d : def.disks()) {
      if (d.sourceFile().isEmpty()
          && ("file".equals(d.sourceType()) || "cdrom".equals(d.device()))) {
        continue; // an empty CD-ROM drive
      }
      if (d.sourceFile().isEmpty() || !"file".equals(d.sourceType())) {
        throw new MigrationFailure(
            "disk "
                + d.target()
                + " is a "
                + d.sourceType()
                + " disk: only file-backed disks are supported");
      }
      if (d.shareable()) {
        throw new MigrationFailure(
            "disk " + d.target() + " is shareable: it would be written by two hosts");
      }
      Path path = datastores.confine("disk " + d.target(), d.sourceFile().get());
      String format = d.driverType().orElse("raw");
      if (!format.equals("qcow2") && !format.equals("raw")) {
        throw new MigrationFailure(
            "disk " + d.target() + " is " + format + ": only qcow2 and raw are supported");
      }
      List<ImageInfo> chain = images.chain(path, ImageTool.Access.SHARED);
      ImageInfo top = chain.get(0);
      List<String> backing = new ArrayList<>();
      for (ImageInfo b : chain.subList(1, chain.size())) {
        backing.add(datastores.confine("backing file of " + d.target(), b.filename()).toString());
      }
      boolean isWritable = d.writableFile();
      if (isWritable) {
        directories.add(vmDirectory(path, openNebulaDir)); // only a writable disk's is the VM's
        writable.add(path);
      }
      disks.add(
          new ManifestDisk(
              d.target(),
              path.toString(),
              format,
              isWritable,
              top.virtualSize(),
              Files.size(files.local(path)),
              usage.allocated(path),
              top.snapshots().stream().map(SourceHost::entry).toList(),
              backing));
    }
    if (disks.stream().noneMatch(ManifestDisk::writable)) {
      throw new MigrationFailure(vm + " has no writable file-backed disk");
    }
    List<ManifestSnapshot> snapshots = new ArrayList<>();
    for (SnapshotDefinition s : hypervisor.snapshots(vm)) {
      snapshots.add(new ManifestSnapshot(s.name(), s.parent().orElse(""), s.xml()));
    }
    String current = hypervisor.currentSnapshot(vm).orElse("");
    List<String> dirs = ownDirectories(vm, directories);
    List<String> own = new ArrayList<>();
    long ancillary = 0;
    if (settings.migration().copyWholeVmDirectory()) {
      for (String dir : dirs) {
        for (Map.Entry<Path, Long> f : usage.filesBelow(Path.of(dir)).entrySet()) {
          String name = f.getKey().getFileName().toString();
          if (name.startsWith(".ferry-")) {
            continue; // an overlay or marker of an earlier attempt: never the VM's data
          }
          own.add(f.getKey().toString());
          if (!writable.contains(f.getKey())) {
            ancillary += f.getValue();
          }
        }
      }
    } else {
      for (ManifestDisk d : disks) {
        List<String> candidates = new ArrayList<>(d.backingChain());
        candidates.add(0, d.path());
        for (String f : candidates) {
          if (Manifest.inDirectories(f, dirs) && !own.contains(f)) {
            own.add(f);
            if (!writable.contains(Path.of(f))) {
              ancillary += usage.allocated(Path.of(f));
            }
          }
        }
      }
    }
    for (String f : Manifest.sharedFiles(disks, dirs)) {
      ancillary += usage.allocated(Path.of(f));
    }
    return new Manifest(
        migrationId,
        vm,
        def.uuid(),
        settings.host(),
        destination,
        def.memoryKiB(),
        def.vcpus(),
        disks,
        snapshots,
        current,
        dirs,
        ancillary,
        own,
        !summary.persistent());
  }

  public static SnapshotEntry entry(ImageSnapshot s) {
    return new SnapshotEntry(
        s.id(),
        s.name(),
        s.vmStateSize(),
        s.dateSec(),
        s.dateNsec(),
        s.vmClockSec(),
        s.vmClockNsec());
  }

  /** QEMU's block node of each disk file ({@code query-block}): where a dirty bitmap attaches. */
  public Map<String, String> blockNodes(String vm) throws IOException {
    JsonNode reply =
        JSON.readTree(hypervisor.qemuMonitorCommand(vm, "{\"execute\":\"query-block\"}"));
    Map<String, String> nodes = new HashMap<>();
    for (JsonNode dev : reply.path("return")) {
      JsonNode inserted = dev.path("inserted");
      if (inserted.has("node-name") && inserted.has("file")) {
        nodes.put(
            DatastorePaths.collapsed(inserted.get("file").asText()),
            inserted.get("node-name").asText());
      }
    }
    return nodes;
  }

  /**
   * A persistent dirty bitmap on the disk's format node, added through QMP before the bulk copy.
   * libvirt does not know it (raw QMP taints the domain as custom-monitor); libvirt's own
   * checkpoints would make the migration refuse.
   */
  public void addBitmap(String vm, String node, String bitmap) {
    hypervisor.qemuMonitorCommand(
        vm,
        "{\"execute\":\"block-dirty-bitmap-add\",\"arguments\":{\"node\":\""
            + node
            + "\",\"name\":\""
            + bitmap
            + "\",\"persistent\":true}}");
  }

  /**
   * Ferry bitmaps that an earlier migration left in the running VM's disks (it ended before its
   * verification or undo removed them), as QEMU reports them: it holds persistent bitmaps loaded
   * and writes them to the image only when it closes it. Each is removed (from the image too). Left
   * in place, one would be carried along and make a later snapshot-revert fail. Returns what it
   * did.
   */
  public List<String> removeLeftoverBitmaps(String vm) throws IOException {
    JsonNode reply =
        JSON.readTree(hypervisor.qemuMonitorCommand(vm, "{\"execute\":\"query-block\"}"));
    List<String> removed = new ArrayList<>();
    for (JsonNode dev : reply.path("return")) {
      JsonNode inserted = dev.path("inserted");
      String node = inserted.path("node-name").asText("");
      for (JsonNode b : inserted.path("dirty-bitmaps")) {
        String name = b.path("name").asText("");
        if (FerryBitmaps.isFerrys(name) && !node.isEmpty()) {
          removeBitmap(vm, node, name);
          removed.add(
              inserted.path("file").asText(node)
                  + ": dirty bitmap "
                  + name
                  + " of an earlier migration removed");
        }
      }
    }
    return removed;
  }

  /**
   * The VM is back here, paused on its untouched files (migrated back, or never left): the images
   * stay inactive until the resume, so qemu-img removes the bitmap the source QEMU stored in them
   * when it stopped; then the snapshot metadata is restored and the VM resumes.
   */
  public void resumeBack(String vm, Manifest m, String bitmap) {
    for (ManifestDisk d : m.writableDisks()) {
      Path file = Path.of(d.path());
      if ("qcow2".equals(d.format())
          && images.info(file, ImageTool.Access.SHARED).bitmaps().contains(bitmap)) {
        images.removeBitmap(file, bitmap);
      }
    }
    restoreSnapshotMetadata(vm, m);
    hypervisor.resume(vm);
  }

  public void removeBitmap(String vm, String node, String bitmap) {
    hypervisor.qemuMonitorCommand(
        vm,
        "{\"execute\":\"block-dirty-bitmap-remove\",\"arguments\":{\"node\":\""
            + node
            + "\",\"name\":\""
            + bitmap
            + "\"}}");
  }

  /** libvirt refuses to migrate a domain with snapshot metadata: drop it, children first. */
  public void dropSnapshotMetadata(String vm, List<ManifestSnapshot> snapshots) {
    drop(hypervisor, vm, snapshots);
  }

  /** {@link #dropSnapshotMetadata} for a host that is not the source (a migration back). */
  public static void drop(Hypervisor hypervisor, String vm, List<ManifestSnapshot> snapshots) {
    Set<String> present = new LinkedHashSet<>();
    hypervisor.snapshots(vm).forEach(s -> present.add(s.name()));
    for (int i = snapshots.size() - 1; i >= 0; i--) {
      String name = snapshots.get(i).name();
      if (present.contains(name)) {
        hypervisor.deleteSnapshotMetadata(vm, name);
      }
    }
  }

  /** Puts back what {@link #dropSnapshotMetadata} removed, parents first, and the current one. */
  public void restoreSnapshotMetadata(String vm, Manifest manifest) {
    restore(hypervisor, vm, manifest);
  }

  public static void restore(Hypervisor hypervisor, String vm, Manifest manifest) {
    Set<String> present = new LinkedHashSet<>();
    hypervisor.snapshots(vm).forEach(s -> present.add(s.name()));
    for (ManifestSnapshot s : manifest.snapshots()) {
      if (!present.contains(s.name())) {
        hypervisor.redefineSnapshot(vm, s.xml(), s.name().equals(manifest.currentSnapshot()));
      }
    }
    if (!manifest.currentSnapshot().isEmpty()
        && !hypervisor.currentSnapshot(vm).equals(Optional.of(manifest.currentSnapshot()))) {
      manifest.snapshots().stream()
          .filter(s -> s.name().equals(manifest.currentSnapshot()))
          .findFirst()
          .ifPresent(s -> hypervisor.redefineSnapshot(vm, s.xml(), true));
    }
  }

  /** OpenNebula's TM snapshot directory of disk.N: the image and its disk-snapshot chain. */
  private static final java.util.regex.Pattern TM_SNAPSHOT_DIR =
      java.util.regex.Pattern.compile("disk\\.\\d+\\.snap");

  /**
   * The VM directory of a writable disk: OpenNebula's (from the domain's metadata) when the disk
   * lies below it; otherwise the disk's own directory, or the one above it when that is a TM
   * snapshot directory ({@code .../42/disk.0.snap/0}: the VM directory is {@code .../42}, where the
   * {@code disk.0} link, the deployment file and the snapshots' XML live).
   */
  static Path vmDirectory(Path disk, Optional<Path> openNebulaDir) {
    if (openNebulaDir.isPresent() && disk.startsWith(openNebulaDir.get())) {
      return openNebulaDir.get();
    }
    Path dir = disk.getParent();
    return TM_SNAPSHOT_DIR.matcher(dir.getFileName().toString()).matches() ? dir.getParent() : dir;
  }

  /**
   * The directories of the VM's writable disks, which are copied whole and later removed. Each must
   * lie below a datastore root (not be one) and hold no disk of another domain on this host: a
   * directory that is not the VM's own is never copied whole nor removed.
   */
  private List<String> ownDirectories(String vm, Set<Path> directories) {
    List<String> dirs = new ArrayList<>();
    for (Path dir : directories) {
      if (datastores.rootOf(dir).isEmpty()) {
        throw new MigrationFailure(
            dir + " is a datastore root: refusing to copy a whole datastore");
      }
      dirs.add(dir.toString());
    }
    if (!settings.migration().copyWholeVmDirectory()) {
      return dirs;
    }
    for (DomainSummary other : hypervisor.listDomains()) {
      if (other.name().equals(vm)) {
        continue;
      }
      for (DiskDefinition d : hypervisor.definition(other.name(), false).disks()) {
        Optional<Path> file = d.sourceFile().map(f -> Path.of(f).normalize());
        for (Path dir : directories) {
          if (file.isPresent() && file.get().startsWith(dir)) {
            throw new MigrationFailure(
                dir
                    + " also holds "
                    + file.get()
                    + " of domain "
                    + other.name()
                    + ": it is not "
                    + vm
                    + "'s own directory, so it is neither copied whole nor removed; "
                    + "set ferry.node.migration.copy-whole-vm-directory = false to move only the"
                    + " VM's disks");
          }
        }
      }
    }
    return dirs;
  }

  /**
   * Removes this VM's files on this host once the destination acknowledged: exactly the files the
   * manifest lists (journaled before anything was copied), then those of its own directories that
   * are left empty. A shared file (a base image outside the VM's directories) is never listed, and
   * a file that appeared after the listing stays.
   */
  public List<String> removeFiles(Manifest manifest) throws IOException {
    List<String> removed = new ArrayList<>();
    for (String f : manifest.files()) {
      Path listed = Path.of(f);
      // a link (OpenNebula's disk.N) is removed, never followed: its parent is what is confined,
      // and its target may be gone already
      Path p =
          Files.isSymbolicLink(files.local(listed))
              ? datastores
                  .confine("file", listed.getParent().toString())
                  .resolve(listed.getFileName())
              : datastores.confine("file", f);
      if (manifest.isOwn(p.toString()) && Files.deleteIfExists(files.local(p))) {
        removed.add(p.toString());
      }
    }
    for (String dir : manifest.directories()) {
      removed.addAll(
          FileTrees.deleteEmptyDirectories(files.local(datastores.confine("directory", dir))));
    }
    return removed;
  }

  public DomainState state(String vm) {
    return hypervisor.lookup(vm).map(DomainSummary::state).orElse(DomainState.NOSTATE);
  }
}
