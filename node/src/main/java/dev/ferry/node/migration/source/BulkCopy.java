package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.CopyPipelines;
import dev.ferry.node.disksync.DiskJob;
import dev.ferry.node.disksync.DiskSyncActor;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.migration.MigrationBehaviors;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.node.migration.source.SourceMessage.BitmapsAdded;
import dev.ferry.node.migration.source.SourceMessage.DirectoryCopied;
import dev.ferry.node.migration.source.SourceMessage.DiskStopped;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMigration.Cancel;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.DiskProgress;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.Materializer;

/**
 * The bulk copy, while the VM runs: dirty tracking for the delta, one {@link DiskSyncActor} per
 * writable disk, the VM directories alongside, and for the overlay and cold strategies the
 * destination's exact check of the quiescent copies.
 */
final class BulkCopy extends SourceFlow {

  BulkCopy(SourceMigration migration) {
    super(migration);
  }

  /**
   * A copy besides the writable disks: cancelled with the migration, waited for before it goes on.
   */
  private CompletableFuture<Long> ancillary(CopyPipelines.Copy copy) {
    run.ancillaryCopies.add(copy);
    return copy.done.toCompletableFuture();
  }

  /**
   * Starts copying the VM directories, minus the writable disks, to the destination. It runs
   * alongside the dirty tracking and the disk copies; {@link #copying} waits for it.
   */
  void startDirectoryCopy() {
    CopyPipelines pipelines =
        new CopyPipelines(
            services.runner(),
            services.settings(),
            Materializer.createMaterializer(ctx),
            services.blocking());
    List<String> excludes = new ArrayList<>();
    List<CompletableFuture<Long>> copies = new ArrayList<>();
    for (String dir : run.manifest.directories()) {
      excludes.clear();
      // by full relative path, anchored: a writable disk may lie in a subdirectory
      // (OpenNebula's disk.0.snap/0), and a name alone would also match elsewhere
      for (ManifestDisk d : run.manifest.writableDisks()) {
        Path p = Path.of(d.path());
        if (p.startsWith(Path.of(dir))) {
          excludes.add("/" + Path.of(dir).relativize(p));
        }
      }
      if (!excludes.contains(OverlayOps.EXCLUDE)) {
        excludes.add(OverlayOps.EXCLUDE);
      }
      if (!services.settings().migration().copyWholeVmDirectory()) {
        continue;
      }
      copies.add(
          ancillary(
              pipelines.rsyncDirectory(
                  Path.of(dir),
                  List.copyOf(excludes),
                  run.destination,
                  run.options.bandwidthBytesPerSecond(),
                  run.manifest.ancillaryBytes(),
                  run.ancillaryDone)));
    }
    if (!services.settings().migration().copyWholeVmDirectory()) {
      // only what the disks need from the VM's directories (backing files, read-only disks)
      for (String f : run.manifest.files()) {
        if (run.manifest.writableDisks().stream().noneMatch(d -> d.path().equals(f))) {
          copies.add(
              ancillary(
                  pipelines.rsync(
                      Path.of(f),
                      run.destination,
                      CopyPipelines.RsyncMode.SPARSE_COPY,
                      run.options.bandwidthBytesPerSecond(),
                      run.manifest.ancillaryBytes(),
                      run.ancillaryDone)));
        }
      }
    }
    for (String f : run.manifest.sharedFiles()) {
      // a base image other VMs may use: only copied where it is missing, never overwritten
      copies.add(
          ancillary(
              pipelines.placeShared(
                  Path.of(f),
                  run.destination,
                  run.options.bandwidthBytesPerSecond(),
                  run.manifest.ancillaryBytes(),
                  run.ancillaryDone)));
    }
    run.ancillaryPending = true;
    ctx.pipeToSelf(
        CompletableFuture.allOf(copies.toArray(CompletableFuture[]::new)),
        (ok, err) -> new DirectoryCopied(err));
  }

  /** Adds a persistent dirty bitmap to every disk the delta will sync, before the bulk copy. */
  Behavior<Command> dirtyTracking() {
    List<ManifestDisk> delta = run.deltaDisks();
    if (delta.isEmpty()) {
      return copying();
    }
    migration.enter(
        MigrationPhase.DIRTY_TRACKING,
        "adding dirty bitmaps",
        services.settings().tools().commandTimeout());
    // journaled before the act: an agent that dies mid-step still finds and removes them
    String bitmap = run.bitmapName();
    if (!migration.record(new JournalEntry.BitmapsAdded(bitmap))) {
      return migration.cannotJournal();
    }
    String vm = run.vm;
    Map<String, String> nodes = run.blockNodes;
    migration.blocking(
        () -> {
          int added = 0;
          try {
            for (ManifestDisk d : delta) {
              String node = nodes.get(d.path());
              if (node == null) {
                throw new MigrationFailure("QEMU has no block node for " + d.path());
              }
              source.addBitmap(vm, node, bitmap);
              added++;
            }
          } catch (RuntimeException e) {
            return new BitmapsAdded(added, e);
          }
          return new BitmapsAdded(added, null);
        },
        (done, error) -> error == null ? done : new BitmapsAdded(0, error));
    return migration.withCommon(
        migration
            .state()
            .on(
                BitmapsAdded.class,
                m -> {
                  run.bitmapsAdded = m.added() > 0;
                  if (m.failed()) {
                    return migration.undo.rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "adding dirty bitmaps failed: " + MigrationFailure.reason(m.error()));
                  }
                  return copying();
                })
            .on(Cancel.class, migration::cancelAndRollBack)
            .on(
                PhaseTimeout.class,
                m ->
                    migration.undo.rollingBack(
                        MigrationOutcome.ROLLED_BACK, "adding dirty bitmaps timed out")));
  }

  /** One DiskSyncActor per writable disk copies its file while the VM runs. */
  Behavior<Command> copying() {
    List<ManifestDisk> writable = run.manifest.writableDisks();
    long share = run.options.bandwidthBytesPerSecond() / writable.size();
    List<DiskJob> jobs = new ArrayList<>();
    for (ManifestDisk d : writable) {
      DiskJob job =
          new DiskJob(
              d.target(),
              Path.of(d.path()),
              run.destination,
              d.allocatedBytes(),
              run.wantsDelta(d) ? Optional.of(run.bitmapName()) : Optional.empty(),
              run.options.bulkCopy() == dev.ferry.protocol.BulkCopyMethod.RSYNC,
              run.wantsDelta(d) || run.cold() ? 0 : run.options.warmPasses(),
              share);
      jobs.add(job);
      ActorRef<DiskSyncActor.Command> disk =
          ctx.spawn(
              MigrationBehaviors.withMigrationMdc(
                  DiskSyncActor.Command.class,
                  run.id,
                  run.vm,
                  DiskSyncActor.create(
                      job,
                      diskEvents,
                      services.runner(),
                      services.settings(),
                      services.blocking())),
              "disk-" + d.target());
      run.disks.put(d.target(), disk);
      ctx.watchWith(disk, new DiskStopped(d.target()));
      run.diskProgress.put(
          d.target(), new DiskProgress(d.target(), d.path(), "queued", 0, d.allocatedBytes()));
      disk.tell(new DiskSyncActor.BulkCopy());
    }
    run.jobs = jobs;
    long bytes = writable.stream().mapToLong(ManifestDisk::allocatedBytes).sum();
    migration.enter(
        MigrationPhase.BULK_COPY,
        "copying " + writable.size() + " disk(s) while " + run.vm + " runs",
        migration.copyTimeout(bytes));
    Set<String> pending = new HashSet<>(run.disks.keySet());
    if (run.ancillaryError != null) {
      return migration.undo.rollingBack(
          MigrationOutcome.ROLLED_BACK,
          "copying the VM directory failed: " + MigrationFailure.reason(run.ancillaryError));
    }
    return migration.withCommon(
        migration
            .state()
            .on(
                DirectoryCopied.class,
                m -> {
                  recordDirectoryCopy(m);
                  if (m.failed()) {
                    return migration.undo.rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "copying the VM directory failed: " + MigrationFailure.reason(m.error()));
                  }
                  return pending.isEmpty() ? copied() : Behaviors.same();
                })
            .on(
                DiskSyncActor.BulkCopied.class,
                b -> {
                  run.bulkMethod.put(b.target(), b.method());
                  run.bulkBytes.put(b.target(), b.bytes());
                  pending.remove(b.target());
                  return pending.isEmpty() && !run.ancillaryPending ? copied() : Behaviors.same();
                })
            .on(
                DiskSyncActor.Failed.class,
                f -> {
                  return migration.undo.rollingBack(
                      MigrationOutcome.ROLLED_BACK,
                      "copying " + f.target() + " failed: " + f.reason());
                })
            .on(
                DiskStopped.class,
                m -> run.disks.containsKey(m.target()),
                m ->
                    migration.undo.rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "the copy of " + m.target() + " stopped unexpectedly"))
            .on(Cancel.class, migration::cancelAndRollBack)
            .on(
                PhaseTimeout.class,
                m ->
                    migration.undo.rollingBack(
                        MigrationOutcome.ROLLED_BACK, "the bulk copy timed out")));
  }

  /** Every disk and the VM directory arrived: on to the switchover, unless it is too late. */
  Behavior<Command> copied() {
    migration.record(new JournalEntry.Copied(run.bulkBytes.toString()));
    if (run.pastDeadline()) {
      return migration.undo.rollingBack(
          MigrationOutcome.ROLLED_BACK, "the deadline passed before the switchover");
    }
    return run.overlay() || run.cold()
        ? verifyingCopies()
        : migration.memory.droppingMetadata(migration.memory::migratingMemory);
  }

  void recordDirectoryCopy(DirectoryCopied m) {
    run.ancillaryPending = false;
    run.ancillaryError = m.error();
    run.ancillaryCopies.clear();
  }

  /** The destination proves the frozen copies against the manifest before anything switches. */
  Behavior<Command> verifyingCopies() {
    migration.enter(
        MigrationPhase.VERIFYING_COPIES,
        "verifying the copies on " + run.destination,
        services.settings().migration().timeouts().verify());
    run.target.tell(new DestinationProtocol.VerifyCopies(targetReplies));
    return migration.askedBeforeSwitchover(
        DestinationProtocol.CopiesVerified.class,
        "verifying the copies",
        "",
        m ->
            run.cold()
                ? migration.cold.startingOnDestination()
                : migration.overlay.preparingOverlays());
  }
}
