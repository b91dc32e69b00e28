package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.DiskJob;
import dev.ferry.node.disksync.DiskSyncActor;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.libvirt.JobStats;
import dev.ferry.node.libvirt.MigrationFlag;
import dev.ferry.node.libvirt.MigrationRequest;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.source.SourceMessage.JobPolled;
import dev.ferry.node.migration.source.SourceMessage.MemoryDone;
import dev.ferry.node.migration.source.SourceMessage.MetadataDropped;
import dev.ferry.node.migration.source.SourceMessage.PhaseTimeout;
import dev.ferry.node.migration.source.SourceMessage.PollJob;
import dev.ferry.node.migration.source.SourceMigration.Cancel;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.ManifestSnapshot;
import dev.ferry.protocol.MemoryProgress;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The memory migration, shared by the live strategies: libvirt's snapshot metadata dropped (libvirt
 * refuses to migrate with it; the manifest keeps it), the destination armed, libvirt's P2P job
 * started and watched (statistics, stalls, max downtime).
 */
final class MemoryMigration extends SourceFlow {

  MemoryMigration(SourceMigration migration) {
    super(migration);
  }

  /** libvirt refuses to migrate a domain with snapshot metadata; the manifest keeps it. */
  Behavior<Command> droppingMetadata(Supplier<Behavior<Command>> next) {
    if (run.manifest.snapshots().isEmpty()) {
      return next.get();
    }
    migration.enter(
        MigrationPhase.DROPPING_METADATA,
        "dropping libvirt snapshot metadata (kept in the journal)",
        services.settings().tools().commandTimeout());
    // journaled first: a crash may come mid-call
    if (!migration.record(new JournalEntry.MetadataDropping())) {
      return migration.cannotJournal();
    }
    run.metadataDropped = true;
    String vm = run.vm;
    List<ManifestSnapshot> snapshots = run.manifest.snapshots();
    migration.act(() -> source.dropSnapshotMetadata(vm, snapshots), MetadataDropped::new);
    return migration.stepBeforeSwitchover(
        MetadataDropped.class, "dropping snapshot metadata", m -> next.get());
  }

  /**
   * Arms the target (it watches for the paused VM) and the delta appliers, then migrates memory.
   * The final sync starts on the destination's "paused" event, not when libvirt's call returns: the
   * confirm phase on the source (SIGTERM to QEMU until it is reaped) would add seconds of paused
   * time, and the source's files are final once the destination is paused after Finish.
   */
  Behavior<Command> migratingMemory() {
    long memBytes = run.manifest.memoryKiB() * 1024;
    migration.enter(
        MigrationPhase.MEMORY_MIGRATION,
        "arming the switchover",
        services.settings().migration().timeouts().memory(memBytes));
    run.target.tell(new DestinationProtocol.ArmSwitchover(targetReplies));
    // the delta appliers' JVMs start on the destination meanwhile; a final sync waits for its own
    for (DiskJob j : run.jobs) {
      if (j.bitmap().isPresent()) {
        run.disks.get(j.target()).tell(new DiskSyncActor.ArmFinalSync());
      }
    }
    return migration.askedBeforeSwitchover(
        DestinationProtocol.Armed.class,
        "arming the switchover",
        "the destination could not arm: ",
        m -> startMemory());
  }

  Behavior<Command> startMemory() {
    run.memoryStarted = true;
    run.memoryLastChangeAt = System.currentTimeMillis();
    if (!migration.record(new JournalEntry.MemoryStarted())) {
      run.memoryStarted = false;
      return migration.cannotJournal();
    }
    migration.publish("migrating memory to " + run.destination);
    // suspend-sync: paused on arrival, files synced by us (libvirt calls that unsafe);
    // overlay: libvirt mirrors the top layer (the overlay) and resumes the VM itself
    EnumSet<MigrationFlag> flags =
        run.overlay()
            ? EnumSet.of(MigrationFlag.LIVE, MigrationFlag.PEER2PEER, MigrationFlag.NON_SHARED_INC)
            : EnumSet.of(
                MigrationFlag.LIVE,
                MigrationFlag.PEER2PEER,
                MigrationFlag.PAUSED,
                MigrationFlag.UNSAFE);
    flags.addAll(MigrationFlag.definitionFlags(run.manifest.transientDomain()));
    if (run.options.autoConverge()) {
      flags.add(MigrationFlag.AUTO_CONVERGE);
    }
    long bw = run.options.bandwidthBytesPerSecond();
    MigrationRequest request =
        new MigrationRequest(
            services.settings().migration().destinationUri(run.destination),
            flags,
            bw > 0 ? OptionalLong.of(Math.max(1, bw >> 20)) : OptionalLong.empty(),
            run.overlay()
                ? run.manifest.writableDisks().stream().map(ManifestDisk::target).toList()
                : List.of(),
            Optional.empty());
    String vm = run.vm;
    ctx.pipeToSelf(
        CompletableFuture.runAsync(
            () -> services.hypervisor().migrate(vm, request), services.blocking()),
        (ok, err) -> new MemoryDone(err));
    timers.startTimerAtFixedRate(
        "poll-job", new PollJob(), services.settings().migration().intervals().jobPoll());
    return migration.withCommon(
        migration
            .state()
            .on(
                DestinationProtocol.DestinationPaused.class,
                destinationPaused -> {
                  run.destinationPausedAt = destinationPaused.atMillis();
                  return migration.suspendSync.switchedOver(
                      "the destination is paused after Finish");
                })
            .on(
                MemoryDone.class,
                m -> {
                  run.memoryReturned = true;
                  if (m.error() == null) {
                    return run.overlay()
                        ? migration.overlay.merging()
                        : migration.suspendSync.switchedOver("libvirt's migration call returned");
                  }
                  run.memoryError = m.error();
                  String why =
                      run.cancelRequested
                          ? "cancelled"
                          : "the memory migration failed: " + MigrationFailure.reason(m.error());
                  return migration.undo.rollingBack(
                      run.cancelRequested
                          ? MigrationOutcome.CANCELLED
                          : MigrationOutcome.ROLLED_BACK,
                      why);
                })
            .on(PollJob.class, m -> pollJob())
            .on(JobPolled.class, this::onJobStats)
            .on(
                Cancel.class,
                m -> {
                  if (run.switchoverStarted) {
                    m.replyTo()
                        .tell(
                            new AgentProtocol.CancelReply(
                                run.id,
                                false,
                                "too late: "
                                    + run.vm
                                    + " is paused for the switchover; finishing is safer than undoing"));
                    return Behaviors.same();
                  }
                  run.cancelRequested = true;
                  m.replyTo()
                      .tell(
                          new AgentProtocol.CancelReply(
                              run.id, true, "aborting the memory migration and rolling back"));
                  abortJob("cancel: " + m.reason());
                  return Behaviors.same();
                })
            .on(
                PhaseTimeout.class,
                m -> {
                  if (!run.switchoverStarted) {
                    abortJob("the memory migration timed out");
                  }
                  return Behaviors.same();
                }));
  }

  Behavior<Command> pollJob() {
    String vm = run.vm;
    ctx.pipeToSelf(
        CompletableFuture.supplyAsync(
            () -> services.hypervisor().jobStats(vm), services.blocking()),
        JobPolled::new);
    return Behaviors.same();
  }

  Behavior<Command> onJobStats(JobPolled m) {
    if (m.error() != null || !m.stats().active()) {
      return Behaviors.same();
    }
    JobStats s = m.stats();
    run.memory =
        new MemoryProgress(
            s.memoryProcessed(),
            s.memoryTotal(),
            s.memoryRemaining(),
            s.memoryBps(),
            s.memoryDirtyRate(),
            s.memoryIteration());
    long now = System.currentTimeMillis();
    if (s.memoryProcessed() != run.memoryLastProcessed) {
      run.memoryLastProcessed = s.memoryProcessed();
      run.memoryLastChangeAt = now;
    } else if (!run.switchoverStarted
        && now - run.memoryLastChangeAt
            > services.settings().migration().timeouts().memoryProgress().toMillis()) {
      abortJob(
          "no memory migration progress for "
              + services.settings().migration().timeouts().memoryProgress().toSeconds()
              + " s");
      run.memoryLastChangeAt = now;
    }
    if (!run.downtimeSet && run.options.maxDowntimeMillis() > 0) {
      run.downtimeSet = true;
      long downtime = run.options.maxDowntimeMillis();
      String vm = run.vm;
      CompletableFuture.runAsync(
          () -> services.hypervisor().setMaxDowntime(vm, downtime), services.blocking());
    }
    return Behaviors.same();
  }

  void abortJob(String why) {
    ctx.getLog().info("{}: aborting the memory migration: {}", run.vm, why);
    run.note("memory migration aborted: " + why);
    String vm = run.vm;
    CompletableFuture.runAsync(
        () -> {
          try {
            services.hypervisor().abortJob(vm);
          } catch (RuntimeException e) {
            // no job (it ended meanwhile): the migration call's own result says what happened
          }
        },
        services.blocking());
  }
}
