package dev.ferry.node.libvirt;

import java.util.List;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * The hypervisor of this host, as the engine needs it. The real adapter is {@link
 * LibvirtHypervisor}, the only code that touches libvirt. Every method blocks: call it from a
 * blocking dispatcher.
 */
public interface Hypervisor extends AutoCloseable {

  List<DomainSummary> listDomains();

  Optional<DomainSummary> lookup(String domain);

  /** The live definition (or the persistent one with {@code inactive}), parsed. */
  DomainDefinition definition(String domain, boolean inactive);

  /** Define (or redefine) a persistent domain from XML. */
  void define(String xml);

  void start(String domain);

  void suspend(String domain);

  void resume(String domain);

  /** Hard stop (SIGTERM to QEMU, then SIGKILL). */
  void destroy(String domain);

  /** ACPI power button. */
  void shutdown(String domain);

  /** Remove the persistent definition (and libvirt's snapshot metadata with it). */
  void undefine(String domain);

  /** Every snapshot, parents before children. */
  List<SnapshotDefinition> snapshots(String domain);

  Optional<String> currentSnapshot(String domain);

  /** Forget a snapshot's libvirt metadata; the data stays in the qcow2 files. */
  void deleteSnapshotMetadata(String domain, String snapshot);

  /** Recreate a snapshot's metadata from its XML; {@code current} also makes it current. */
  void redefineSnapshot(String domain, String xml, boolean current);

  /** Create a snapshot from XML with flags (e.g. a disk-only external overlay). */
  void createSnapshot(String domain, String xml, SnapshotCreate... flags);

  /** Revert to a snapshot (the domain ends up in the snapshot's state). */
  void revertToSnapshot(String domain, String snapshot);

  /** Migrate the domain; blocks until libvirt's whole protocol (confirm phase included) ends. */
  void migrate(String domain, MigrationRequest request);

  JobStats jobStats(String domain);

  void abortJob(String domain);

  void setMaxDowntime(String domain, long millis);

  /** A QMP command through libvirt's monitor (taints the domain as custom-monitor). */
  String qemuMonitorCommand(String domain, String json);

  /** Start an active block commit of {@code disk}'s top layer into {@code base}. */
  void blockCommit(
      String domain, String disk, String base, long bandwidthBytes, BlockCommit... flags);

  Optional<BlockJob> blockJob(String domain, String disk);

  /** End a block job; with {@code pivot} switch the disk to the job's destination. */
  void blockJobAbort(String domain, String disk, boolean pivot);

  HostInfo hostInfo();

  /** Receive every lifecycle event of every domain until the subscription is closed. */
  AutoCloseable subscribe(Consumer<LifecycleEvent> listener);

  @Override
  void close();

  /** Flags for {@link #createSnapshot}. */
  enum SnapshotCreate {
    DISK_ONLY,
    NO_METADATA,
    ATOMIC,
    REUSE_EXTERNAL
  }

  /** Flags for {@link #blockCommit}. */
  enum BlockCommit {
    ACTIVE,
    SHALLOW
  }
}
