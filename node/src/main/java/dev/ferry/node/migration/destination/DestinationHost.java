package dev.ferry.node.migration.destination;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.node.host.HostFiles;
import dev.ferry.node.host.OpenFiles;
import dev.ferry.node.image.ImageTool;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.DomainSummary;
import dev.ferry.node.libvirt.Hypervisor;
import dev.ferry.node.libvirt.MigrationFlag;
import dev.ferry.node.libvirt.MigrationRequest;
import dev.ferry.node.libvirt.SnapshotDefinition;
import dev.ferry.node.migration.FileTrees;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.source.SourceHost;
import dev.ferry.node.settings.NodeSettings;
import dev.ferry.node.validation.DatastorePaths;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.ManifestSnapshot;
import dev.ferry.protocol.Verification;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/** The blocking steps a migration runs on its destination host. */
public final class DestinationHost {
  /** Written into every VM directory the target creates; only such directories are ever removed. */
  public static final String MARKER = ".ferry-incoming";

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Hypervisor hypervisor;
  private final ImageTool images;
  private final DatastorePaths datastores;
  private final OpenFiles openFiles;
  private final NodeSettings settings;
  private final HostFiles files;
  private final ImageChecks checks;

  /** The destination side of a migration on this host, with the host's ports. */
  public DestinationHost(HostPorts s) {
    this(
        s.hypervisor(),
        s.images(),
        s.datastores(),
        s.openFiles(),
        s.settings(),
        s.files(),
        s.blocking());
  }

  DestinationHost(
      Hypervisor hypervisor,
      ImageTool images,
      DatastorePaths datastores,
      OpenFiles openFiles,
      NodeSettings settings,
      HostFiles files,
      java.util.concurrent.Executor parallel) {
    this.hypervisor = hypervisor;
    this.images = images;
    this.datastores = datastores;
    this.openFiles = openFiles;
    this.settings = settings;
    this.files = files;
    this.checks = new ImageChecks(images, datastores, parallel);
  }

  /**
   * Can this host take the VM? The domain must not exist here, each VM directory must be absent (or
   * a leftover of an earlier attempt of ours, which is removed), and there must be room. Creates
   * the directories with our marker.
   */
  public void prepare(Manifest m) throws IOException {
    Optional<DomainSummary> existing = hypervisor.lookup(m.vm());
    if (existing.isPresent()) {
      throw new MigrationFailure(
          "a domain named "
              + m.vm()
              + " is already defined on "
              + settings.host()
              + " ("
              + existing.get().state().name().toLowerCase()
              + ")");
    }
    for (String dir : m.directories()) {
      Path d = datastores.confine("directory", dir);
      if (Files.exists(files.local(d), LinkOption.NOFOLLOW_LINKS)) {
        if (!Files.exists(files.local(d).resolve(MARKER))) {
          throw new MigrationFailure(
              d
                  + " already exists on "
                  + settings.host()
                  + " and was not created by Ferry: refusing to overwrite it");
        }
        FileTrees.deleteTree(
            files.local(d)); // our own leftover from an attempt that did not finish
      }
    }
    long needed = m.totalBytes() + m.totalBytes() / 20 + (64L << 20);
    for (String dir : m.directories()) {
      Path root = datastores.rootOf(Path.of(dir)).orElseThrow();
      long usable = Files.getFileStore(existingAncestor(files.local(dir))).getUsableSpace();
      if (usable < needed) {
        throw new MigrationFailure(
            "not enough space in "
                + root
                + " on "
                + settings.host()
                + ": "
                + mib(usable)
                + " MiB free, "
                + mib(needed)
                + " MiB needed");
      }
    }
    long freeMemory = hypervisor.hostInfo().freeMemoryBytes();
    if (freeMemory < m.memoryKiB() * 1024) {
      throw new MigrationFailure(
          "not enough free memory on "
              + settings.host()
              + ": "
              + mib(freeMemory)
              + " MiB free, "
              + m.memoryKiB() / 1024
              + " MiB needed");
    }
    for (String dir : m.directories()) {
      Path d = files.local(dir);
      Files.createDirectories(d);
      Files.writeString(
          d.resolve(MARKER),
          m.migrationId() + " " + m.vm() + " from " + m.sourceHost() + "\n",
          StandardCharsets.UTF_8);
    }
    // a disk's own subdirectory (OpenNebula's disk.N.snap/): the disk copy and the overlay need it
    // before the directory copy may have made it
    for (ManifestDisk disk : m.disks()) {
      if (m.isOwn(disk.path())) {
        Files.createDirectories(files.local(Path.of(disk.path()).getParent()));
      }
    }
  }

  private static Path existingAncestor(Path p) {
    Path e = p;
    while (e != null && !Files.exists(e)) {
      e = e.getParent();
    }
    return e == null ? Path.of("/") : e;
  }

  private static long mib(long bytes) {
    return bytes >> 20;
  }

  /**
   * The paused VM's files against the manifest: bitmaps the delta carried along removed, every
   * snapshot table equal, no Ferry bitmap left, qemu-img check clean. Opening without {@code -U}
   * also proves the paused QEMU has not activated the images (it would hold their lock).
   */
  public Verification verifyFiles(Manifest m, List<DestinationProtocol.DiskBitmap> bitmaps) {
    List<String> details = new ArrayList<>();
    for (DestinationProtocol.DiskBitmap b : bitmaps) {
      images.removeBitmap(datastores.confine("disk", b.path()), b.bitmap());
      details.add(b.path() + ": dirty bitmap " + b.bitmap() + " removed");
    }
    return checks.verify(m.disks(), ImageChecks.Moment.PAUSED, this::checkedWhenRunning, details);
  }

  /**
   * Overlay strategy, before the migration: the frozen files copied here carry exactly the
   * manifest's snapshot tables, no Ferry bitmap, and are consistent. Nothing has them open, so the
   * check is exact and always made.
   */
  public Verification verifyCopies(Manifest m) {
    return checks.verify(
        m.writableDisks(),
        ImageChecks.Moment.COPIED,
        d -> "qcow2".equals(d.format()),
        new ArrayList<>());
  }

  /** Overlay strategy, after the merge, the VM running here: the same, read with {@code -U}. */
  public Verification verifyMerged(Manifest m) {
    return checks.verify(
        m.disks(), ImageChecks.Moment.MERGED, this::checkedWhenRunning, new ArrayList<>());
  }

  /** Disks a running (or paused) VM writes get a qemu-img check unless it is turned off. */
  private boolean checkedWhenRunning(ManifestDisk d) {
    return d.writable() && "qcow2".equals(d.format()) && settings.migration().imageCheck();
  }

  /** Redefines the snapshot metadata here and checks libvirt's list and current snapshot. */
  public Verification redefine(Manifest m, Verification v) {
    SourceHost.restore(hypervisor, m.vm(), m);
    List<String> listed =
        hypervisor.snapshots(m.vm()).stream().map(SnapshotDefinition::name).toList();
    List<String> expected = m.snapshots().stream().map(ManifestSnapshot::name).toList();
    String current = hypervisor.currentSnapshot(m.vm()).orElse("");
    boolean equal = listed.equals(expected) && current.equals(m.currentSnapshot());
    List<String> details = new ArrayList<>(v.details());
    details.add(
        "libvirt snapshots "
            + listed
            + " current '"
            + current
            + "'"
            + (equal
                ? " equal to the source's"
                : " DIFFER from " + expected + " current '" + m.currentSnapshot() + "'"));
    return new Verification(v.snapshotTablesEqual(), v.imageCheckClean(), equal, false, details);
  }

  /**
   * Cold strategy: defines the domain from the source's persistent XML, redefines the snapshot
   * metadata, boots it and checks the inodes it opened. {@code copies} is the exact check of the
   * copied files made before (nothing had them open). The domain is started only if the metadata
   * matches the source's, and destroyed again if the check after the start fails: it must never run
   * here unverified while the source may start it again.
   */
  public Verification startCold(Manifest m, String domainXml, Verification copies)
      throws IOException {
    hypervisor.define(domainXml);
    Verification meta = redefine(m, copies);
    if (!meta.libvirtSnapshotsEqual()) {
      throw new MigrationFailure(
          "snapshot metadata differs after the redefinition: " + String.join("; ", meta.details()));
    }
    hypervisor.start(m.vm());
    Verification v;
    try {
      v = inodeCheck(m, meta);
    } catch (IOException | RuntimeException e) {
      hypervisor.destroy(m.vm());
      throw e;
    }
    if (!v.passed()) {
      hypervisor.destroy(m.vm());
      throw new MigrationFailure(
          "verification failed after the boot, domain destroyed: "
              + String.join("; ", v.details()));
    }
    return v;
  }

  public void resume(String vm) {
    hypervisor.resume(vm);
  }

  /** After the resume: the inode QEMU has open for each disk is the inode at the disk's path. */
  public Verification inodeCheck(Manifest m, Verification v) throws IOException {
    List<String> details = new ArrayList<>(v.details());
    long pid =
        openFiles
            .qemuPid(m.vm())
            .orElseThrow(
                () ->
                    new MigrationFailure(
                        "no QEMU pid file for " + m.vm() + " in " + settings.qemuRunDir()));
    List<OpenFiles.OpenFile> open = openFiles.openFiles(pid);
    boolean ok = true;
    for (ManifestDisk d : m.disks()) {
      Path path = files.local(d.path());
      Path real = path.toRealPath();
      long expected = OpenFiles.inodeAt(path);
      List<OpenFiles.OpenFile> fds =
          open.stream()
              .filter(f -> f.target().equals(real.toString()) || f.target().startsWith(real + " "))
              .toList();
      if (fds.isEmpty()) {
        ok = false;
        details.add(d.target() + ": QEMU (pid " + pid + ") has no descriptor open on " + real);
      } else {
        for (OpenFiles.OpenFile f : fds) {
          boolean same = !f.deleted() && f.inode() == expected;
          ok &= same;
          details.add(
              d.target()
                  + ": fd "
                  + f.fd()
                  + " -> inode "
                  + f.inode()
                  + (same ? " = " : " != ")
                  + "inode "
                  + expected
                  + " at "
                  + real);
        }
      }
    }
    return new Verification(
        v.snapshotTablesEqual(), v.imageCheckClean(), v.libvirtSnapshotsEqual(), ok, details);
  }

  public DomainState state(String vm) {
    return hypervisor.lookup(vm).map(DomainSummary::state).orElse(DomainState.NOSTATE);
  }

  /**
   * Removes what this target created: VM directories that carry our marker. A domain that libvirt
   * left defined here (it should not, after a failed migration) is undefined if it is not running.
   */
  public List<String> cleanup(Manifest m) throws IOException {
    List<String> removed = new ArrayList<>();
    Optional<DomainSummary> d = hypervisor.lookup(m.vm());
    if (d.isPresent()) {
      if (d.get().state().active()) {
        throw new MigrationFailure(
            m.vm()
                + " is "
                + d.get().state().name().toLowerCase()
                + " on "
                + settings.host()
                + ": not removing its files");
      }
      if (d.get().uuid().equals(m.uuid())) {
        hypervisor.undefine(m.vm());
        removed.add("domain definition " + m.vm());
      }
    }
    for (String dir : m.directories()) {
      Path p = datastores.confine("directory", dir);
      if (Files.exists(files.local(p).resolve(MARKER))) {
        removed.addAll(FileTrees.deleteTree(files.local(p)));
      }
    }
    return removed;
  }

  /** Drops the marker once the VM lives here for good: the directory is the VM's now. */
  public void adopt(Manifest m) throws IOException {
    for (String dir : m.directories()) {
      Files.deleteIfExists(files.local(dir).resolve(MARKER));
    }
  }

  /**
   * Activates every block node of a VM that is paused here after an incoming migration, without
   * running its vCPUs. QEMU before 10.0 aborts when it migrates out a VM whose images were never
   * activated ({@code bdrv_inactivate_recurse: Assertion '!(bs->open_flags & BDRV_O_INACTIVE)'},
   * seen on the test bed with 7.2, and by Nova with paused live migration): the VM's memory would
   * be lost. QEMU 10.0 has {@code blockdev-set-active}; before it, exporting a node over NBD
   * activates it, as libvirt's own storage migration relies on. The exports are read-only and
   * removed at once. The destination's files may be wrong (that is why we go back); they are
   * discarded afterwards and the source's files, untouched, are what the VM resumes on.
   */
  public void activateImages(String vm) throws IOException {
    JsonNode version =
        JSON.readTree(hypervisor.qemuMonitorCommand(vm, "{\"execute\":\"query-version\"}"));
    if (version.path("return").path("qemu").path("major").asInt() >= 10) {
      hypervisor.qemuMonitorCommand(
          vm, "{\"execute\":\"blockdev-set-active\",\"arguments\":{\"active\":true}}");
      return;
    }
    List<String> nodes = new ArrayList<>();
    for (JsonNode dev :
        JSON.readTree(hypervisor.qemuMonitorCommand(vm, "{\"execute\":\"query-block\"}"))
            .path("return")) {
      String node = dev.path("inserted").path("node-name").asText("");
      if (!node.isEmpty()) {
        nodes.add(node);
      }
    }
    String socket = settings.qemuRunDir().resolve("ferry-activate-" + vm + ".sock").toString();
    hypervisor.qemuMonitorCommand(
        vm,
        "{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\""
            + socket
            + "\"}}}}");
    try {
      for (int i = 0; i < nodes.size(); i++) {
        hypervisor.qemuMonitorCommand(
            vm,
            "{\"execute\":\"block-export-add\",\"arguments\":{\"type\":\"nbd\",\"id\":\"ferry-activate-"
                + i
                + "\",\"node-name\":\""
                + nodes.get(i)
                + "\",\"writable\":false}}");
        hypervisor.qemuMonitorCommand(
            vm,
            "{\"execute\":\"block-export-del\",\"arguments\":{\"id\":\"ferry-activate-"
                + i
                + "\"}}");
      }
    } finally {
      hypervisor.qemuMonitorCommand(vm, "{\"execute\":\"nbd-server-stop\"}");
      Files.deleteIfExists(Path.of(socket));
    }
  }

  /**
   * Sends the paused VM back to the source, paused: its files there are still authoritative. The
   * source then resumes it.
   */
  /** Whether libvirt still runs a job (the incoming migration's Finish) on the domain. */
  public boolean jobActive(String vm) {
    return hypervisor.jobStats(vm).active();
  }

  public void migrateBack(String vm, String sourceHost, Manifest m) throws IOException {
    // snapshot metadata may have been redefined here already; libvirt refuses to migrate with it
    SourceHost.drop(hypervisor, vm, m.snapshots());
    activateImages(vm);
    hypervisor.migrate(
        vm,
        new MigrationRequest(
            settings.migration().destinationUri(sourceHost),
            MigrationFlag.with(
                MigrationFlag.definitionFlags(m.transientDomain()),
                MigrationFlag.LIVE,
                MigrationFlag.PEER2PEER,
                MigrationFlag.PAUSED,
                MigrationFlag.UNSAFE),
            OptionalLong.empty(),
            List.of(),
            Optional.empty()));
  }
}
