package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.CopyPipelines;
import dev.ferry.node.disksync.DiskJob;
import dev.ferry.node.disksync.DiskSyncActor;
import dev.ferry.node.migration.FerryBitmaps;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.DiskProgress;
import dev.ferry.protocol.DiskResult;
import dev.ferry.protocol.FinalSyncMethod;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.ManifestSnapshot;
import dev.ferry.protocol.MemoryProgress;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationProgress;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.Verification;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What an outgoing migration knows and has done so far: its manifest, progress and the facts its
 * undo depends on. Owned by one {@link SourceMigration} and touched only from its actor thread
 * (blocking steps get copies of what they need and return typed results); every fact that matters
 * for undoing is also journaled. {@link #ancillaryDone} is the one exception: the directory copy's
 * stream adds its bytes to it, hence an atomic.
 */
final class SourceFacts {
  final String id;
  final String vm;
  final String destination;
  final MigrationOptions options;
  final long startedAt = System.currentTimeMillis();
  final Set<ActorRef<MigrationEvent>> watchers = new LinkedHashSet<>();

  Manifest manifest;
  Map<String, String> blockNodes = Map.of();
  List<DiskJob> jobs = List.of();
  ActorRef<DestinationProtocol.Command> target;
  final Map<String, ActorRef<DiskSyncActor.Command>> disks = new LinkedHashMap<>();
  final Map<String, DiskProgress> diskProgress = new LinkedHashMap<>();
  final Map<String, String> bulkMethod = new LinkedHashMap<>();
  final Map<String, Long> bulkBytes = new LinkedHashMap<>();
  final Map<String, String> finalMethod = new LinkedHashMap<>();
  final Map<String, Long> finalBytes = new LinkedHashMap<>();
  final List<DestinationProtocol.DiskBitmap> bitmapsLeft = new ArrayList<>();
  final List<CopyPipelines.Copy> ancillaryCopies = new ArrayList<>();
  boolean ancillaryPending;
  Throwable ancillaryError;
  final AtomicLong ancillaryDone = new AtomicLong();

  MigrationPhase phase = MigrationPhase.QUEUED;
  boolean bitmapsAdded;
  boolean overlaysCreated;
  List<DestinationProtocol.OverlaySpec> overlays = List.of();
  long mergedAt;
  boolean metadataDropped;

  /** Cold strategy: the ACPI button was pressed (journaled first). */
  boolean shutdownRequested;

  /** Cold strategy: the destination was asked to boot the guest (journaled first). */
  boolean coldStartRequested;

  boolean memoryStarted;
  boolean memoryReturned;
  Throwable memoryError;
  boolean switchoverStarted;

  /** Overlay: when libvirt's migration call returned, the guest running on the destination. */
  long runningThereSince;

  boolean cancelRequested;
  long sourceSuspendedAt;
  long switchedOverAt;
  long finalSyncedAt;
  long destinationPausedAt;
  long resumedAt;
  MemoryProgress memory = MemoryProgress.none();
  long memoryLastProcessed = -1;
  long memoryLastChangeAt;
  boolean downtimeSet;
  Verification verification = Verification.none();

  /** Why the journal could not be written, once it could not (null while it works). */
  String journalError;

  final List<String> notes = new ArrayList<>();

  private long rateBytes;
  private long rateAt;
  private long rate;

  SourceFacts(String id, String vm, String destination, MigrationOptions options) {
    this.id = id;
    this.vm = vm;
    this.destination = destination;
    this.options = options;
  }

  boolean overlay() {
    return options.strategy() == MigrationStrategy.OVERLAY;
  }

  boolean cold() {
    return options.strategy() == MigrationStrategy.COLD;
  }

  /** Whether the final sync of this disk sends a dirty-bitmap delta (else rsync). */
  boolean wantsDelta(ManifestDisk d) {
    if (overlay() || cold() || !d.writable() || !"qcow2".equals(d.format())) {
      return false;
    }
    return options.finalSync() != FinalSyncMethod.RSYNC;
  }

  /** The writable disks whose final sync is the bitmap delta (they carry a dirty bitmap). */
  List<ManifestDisk> deltaDisks() {
    return manifest.writableDisks().stream().filter(this::wantsDelta).toList();
  }

  String bitmapName() {
    return FerryBitmaps.of(id);
  }

  String pathOf(String target) {
    return manifest.disks().stream()
        .filter(d -> d.target().equals(target))
        .map(ManifestDisk::path)
        .findFirst()
        .orElse(target);
  }

  boolean pastDeadline() {
    return options.deadlineEpochMillis() > 0
        && System.currentTimeMillis() > options.deadlineEpochMillis();
  }

  void note(String what) {
    notes.add(what);
  }

  long bytesDone() {
    long disks = diskProgress.values().stream().mapToLong(DiskProgress::bytesDone).sum();
    return disks + ancillaryDone.get() + memory.processed();
  }

  long bytesTotal() {
    long files = manifest == null ? 0 : manifest.totalBytes();
    long disks = diskProgress.values().stream().mapToLong(DiskProgress::bytesTotal).sum();
    long memTotal =
        memory.total() > 0 ? memory.total() : manifest == null ? 0 : manifest.memoryKiB() * 1024;
    return Math.max(files, disks + (manifest == null ? 0 : manifest.ancillaryBytes())) + memTotal;
  }

  /** Bytes sent over the wire: copies, final syncs and memory. */
  long bytesMoved() {
    return bulkBytes.values().stream().mapToLong(Long::longValue).sum()
        + finalBytes.values().stream().mapToLong(Long::longValue).sum()
        + ancillaryDone.get()
        + memory.processed();
  }

  /**
   * The paused window, once it is over: the destination's exact resume time, or (overlay, before
   * the destination reported it) when libvirt's call returned.
   */
  long pausedMillis() {
    long end = resumedAt > 0 ? resumedAt : runningThereSince;
    return sourceSuspendedAt > 0 && end > 0 ? Math.max(0, end - sourceSuspendedAt) : 0;
  }

  MigrationProgress progress(String source, String message) {
    long now = System.currentTimeMillis();
    long done = bytesDone();
    if (rateAt == 0) {
      rateAt = now;
      rateBytes = done;
    } else if (now - rateAt >= 1000) {
      long r = (done - rateBytes) * 1000 / (now - rateAt);
      rate = rate == 0 ? r : (rate + r) / 2;
      rateAt = now;
      rateBytes = done;
    }
    long total = bytesTotal();
    long eta = rate > 0 && total > done ? (total - done) / rate : -1;
    // overlay: the guest runs on the destination from the moment libvirt's call returned, long
    // before the destination reports its exact resume time with the merge
    long paused =
        sourceSuspendedAt > 0 && resumedAt == 0 && runningThereSince == 0
            ? now - sourceSuspendedAt
            : 0;
    return new MigrationProgress(
        id,
        vm,
        source,
        destination,
        phase,
        new ArrayList<>(diskProgress.values()),
        memory,
        done,
        total,
        Math.max(0, rate),
        eta,
        paused,
        startedAt,
        now,
        message);
  }

  List<DiskResult> diskResults() {
    List<DiskResult> out = new ArrayList<>();
    if (manifest == null) {
      return out;
    }
    manifest
        .writableDisks()
        .forEach(
            d ->
                out.add(
                    new DiskResult(
                        d.target(),
                        d.path(),
                        bulkMethod.getOrDefault(d.target(), ""),
                        finalMethod.getOrDefault(d.target(), ""),
                        bulkBytes.getOrDefault(d.target(), 0L),
                        finalBytes.getOrDefault(d.target(), 0L))));
    return out;
  }

  /** The migration's result as it stands, from {@code source}; notes go after the message. */
  MigrationResult result(
      String source, MigrationOutcome outcome, String runningOn, String message) {
    long now = System.currentTimeMillis();
    long paused = pausedMillis();
    List<String> snapshots =
        manifest == null
            ? List.of()
            : manifest.snapshots().stream().map(ManifestSnapshot::name).toList();
    String noted = notes.isEmpty() ? "" : " (" + String.join("; ", notes) + ")";
    return new MigrationResult(
        id,
        vm,
        source,
        destination,
        outcome,
        runningOn,
        message + noted,
        options.strategy(),
        diskResults(),
        verification,
        paused,
        now - startedAt,
        bytesMoved(),
        startedAt,
        now,
        snapshots);
  }
}
