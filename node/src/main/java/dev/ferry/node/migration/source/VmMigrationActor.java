package dev.ferry.node.migration.source;

import dev.ferry.node.disksync.CopyPipelines;
import dev.ferry.node.disksync.DiskJob;
import dev.ferry.node.disksync.DiskSyncActor;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.JobStats;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.libvirt.MigrationFlag;
import dev.ferry.node.libvirt.MigrationRequest;
import dev.ferry.node.metrics.EngineMetrics;
import dev.ferry.node.migration.MigrationBehaviors;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.MigrationServices;
import dev.ferry.node.migration.overlay.OverlayMergeActor;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.node.migration.target.MigrationTargetActor;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.DiskProgress;
import dev.ferry.protocol.FinalSyncMethod;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.ManifestSnapshot;
import dev.ferry.protocol.MemoryProgress;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.TargetProtocol;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.BehaviorBuilder;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.stream.Materializer;

/**
 * Migrates one VM from this host with the suspend-sync flow (DESIGN.md section 4). One actor per
 * migrating VM, on the source host; the destination's {@link MigrationTargetActor} prepares,
 * watches the switchover, verifies and resumes.
 *
 * <pre>
 * state                 does                                             next
 * preflight             manifest: disks, snapshot tables, libvirt XML   contacting | finished(rejected)
 * contacting            find the destination agent, PrepareIncoming     preparingDestination | rollingBack
 * preparingDestination  copy the VM directories minus writable disks   dirtyTracking | rollingBack
 * dirtyTracking         persistent dirty bitmap per delta disk (QMP)    copying | rollingBack
 * copying               DiskSyncActor bulk copy per disk, concurrently  droppingMetadata | rollingBack
 * droppingMetadata      libvirt snapshot metadata, children first       migratingMemory | rollingBack
 * migratingMemory       arm target + appliers; migrate LIVE P2P PAUSED  finalSync | rollingBack
 *                       UNSAFE; on the destination's "paused" event
 * finalSync(n)          every disk: delta or rsync --inplace, in place  verifying | finalSync(n+1) | migratingBack
 * verifying(n)          target: bitmaps, tables, check, redefine,       acknowledging | finalSync(n+1) | migratingBack
 *                       resume, open inode
 * acknowledging         result to watchers, then remove source files    stopped
 * rollingBack           stop copies, abort job, remove bitmaps,          finished(rolled-back | cancelled)
 *                       restore metadata, target removes its files
 * migratingBack         target sends the paused VM back; source removes  finished(migrated-back | failed)
 *                       bitmaps, restores metadata, resumes
 *
 * cold strategy (a guest that cannot move live):
 * shuttingDown          ACPI power button, poll until shut off           copying | rollingBack
 * copying, verifyingCopies  as above; the files are quiescent            startingOnDestination | rollingBack
 * startingOnDestination target defines, redefines snapshots, boots      undefiningOnSource | rollingBack |
 *                                                                        finished(failed: off on both)
 * undefiningOnSource    the shut-off definition here goes               acknowledging
 * rollingBack           as above, then the guest boots here again once   finished(rolled-back | failed)
 *                       the destination proved it is not running there
 * </pre>
 *
 * Before the source pauses for the switchover, a cancel or any failure rolls back. Once it paused,
 * cancel is refused: the VM's memory is on its way and finishing is safer than undoing.
 */
public final class VmMigrationActor {

  /** Messages to a migration. */
  public sealed interface Command {}

  /** Add a watcher; it gets the current progress at once. */
  public record Watch(ActorRef<MigrationEvent> watcher) implements Command {}

  public record Cancel(String reason, ActorRef<AgentProtocol.CancelReply> replyTo)
      implements Command {}

  private record Tick() implements Command {}

  private record PhaseTimeout(MigrationPhase phase) implements Command {}

  private record StepDone(String step, Object value, Throwable error) implements Command {}

  private record AgentListing(Set<ActorRef<AgentProtocol.Command>> agents) implements Command {}

  private record RetryContact() implements Command {}

  private record FromTarget(TargetProtocol.Reply reply) implements Command {}

  private record TargetGone() implements Command {}

  /** A disk actor stopped; unexpected unless we stopped it (then it is no longer in run.disks). */
  private record DiskStopped(String target) implements Command {}

  private record Disk(DiskSyncActor.Event event) implements Command {}

  private record SourceEvent(LifecycleEvent event) implements Command {}

  private record MemoryDone(Throwable error) implements Command {}

  /** libvirt's migration call on this host had not returned in time after the resume. */
  private record ConfirmWaitOver() implements Command {}

  /** Whether the source's domain is gone (libvirt's confirm phase undefined it). */
  private record SourceDomainChecked(boolean gone) implements Command {}

  private record RecheckSourceDomain() implements Command {}

  private record JobPolled(JobStats stats, Throwable error) implements Command {}

  private record PollJob() implements Command {}

  private record PollShutdown() implements Command {}

  public static Behavior<Command> create(
      String migrationId,
      String vm,
      String destination,
      MigrationOptions options,
      ActorRef<MigrationEvent> firstWatcher,
      MigrationServices services) {
    return MigrationBehaviors.withMigrationMdc(
        Command.class,
        migrationId,
        vm,
        Behaviors.setup(
            ctx ->
                Behaviors.withTimers(
                    timers -> {
                      ctx.setLoggerName("dev.ferry.migration");
                      SourceRun run = new SourceRun(migrationId, vm, destination, options);
                      run.watchers.add(firstWatcher);
                      VmMigrationActor actor = new VmMigrationActor(ctx, timers, run, services);
                      return withCleanup(actor.preflight(), actor.lifecycleSubscription);
                    })));
  }

  private final ActorContext<Command> ctx;
  private final TimerScheduler<Command> timers;
  private final SourceRun run;
  private final MigrationServices services;
  private final SourceHost source;
  private final MigrationJournal journal;
  private final ActorRef<TargetProtocol.Reply> targetReplies;
  private final ActorRef<DiskSyncActor.Event> diskEvents;
  private final AtomicReference<AutoCloseable> lifecycleSubscription = new AtomicReference<>();

  private VmMigrationActor(
      ActorContext<Command> ctx,
      TimerScheduler<Command> timers,
      SourceRun run,
      MigrationServices services) {
    this.ctx = ctx;
    this.timers = timers;
    this.run = run;
    this.services = services;
    this.source = new SourceHost(services);
    this.journal = services.journal();
    this.targetReplies = ctx.messageAdapter(TargetProtocol.Reply.class, FromTarget::new);
    this.diskEvents = ctx.messageAdapter(DiskSyncActor.Event.class, Disk::new);
    ctx.getLog()
        .info(
            "migration {} of {} to {} starting ({})", run.id, run.vm, run.destination, run.options);
    timers.startTimerAtFixedRate(
        Tick.class, new Tick(), services.settings().migration().progressInterval());
  }

  // ---------------------------------------------------------------- states

  /** Reads the VM, its disks and snapshots on this host into the manifest. */
  private Behavior<Command> preflight() {
    enter(
        MigrationPhase.PREFLIGHT,
        "reading " + run.vm + " and its disks",
        services.settings().migration().timeouts().preflight());
    blocking(
        "manifest",
        () -> {
          Manifest m = source.manifest(run.id, run.vm, run.destination);
          boolean anyDelta = m.writableDisks().stream().anyMatch(d -> wantsDelta(d));
          run.blockNodes = anyDelta ? source.blockNodes(run.vm) : Map.of();
          return m;
        });
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                StepDone.class,
                m -> m.step().equals("manifest"),
                m -> {
                  if (m.error() != null) {
                    return finish(
                        MigrationOutcome.ROLLED_BACK,
                        "refused in preflight: "
                            + MigrationFailure.reason(m.error())
                            + "; nothing was changed");
                  }
                  run.manifest = (Manifest) m.value();
                  journal.append(
                      run.id,
                      MigrationJournal.Role.SOURCE,
                      JournalEntry.started(run.manifest, run.options));
                  subscribeToSourceEvents();
                  return contacting();
                })
            .onMessage(Cancel.class, m -> cancelBeforeStart(m))
            .onMessage(
                PhaseTimeout.class,
                m ->
                    finish(
                        MigrationOutcome.ROLLED_BACK, "preflight timed out; nothing was changed")));
  }

  /** Finds the destination's agent (retrying while it registers) and asks it to prepare. */
  private Behavior<Command> contacting() {
    enter(
        MigrationPhase.PREPARING_DESTINATION,
        "contacting the agent on " + run.destination,
        services.settings().migration().timeouts().contact());
    findDestinationAgent();
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                AgentListing.class,
                m -> {
                  if (m.agents().isEmpty()) {
                    timers.startSingleTimer(
                        RetryContact.class, new RetryContact(), Duration.ofSeconds(1));
                  } else {
                    m.agents()
                        .iterator()
                        .next()
                        .tell(
                            new AgentProtocol.PrepareIncoming(
                                run.manifest, run.options, targetReplies));
                  }
                  return Behaviors.same();
                })
            .onMessage(
                RetryContact.class,
                m -> {
                  findDestinationAgent();
                  return Behaviors.same();
                })
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Ready,
                m -> {
                  run.target = ((TargetProtocol.Ready) m.reply()).target();
                  ctx.watchWith(run.target, new TargetGone());
                  journal.append(
                      run.id,
                      MigrationJournal.Role.SOURCE,
                      JournalEntry.fact(
                          "target-ready",
                          "preparing-destination",
                          Map.of(
                              "target",
                              ActorRefResolver.get(ctx.getSystem())
                                  .toSerializationFormat(run.target),
                              "host",
                              run.destination)));
                  if (overlay()) {
                    return droppingMetadata(this::creatingOverlays);
                  }
                  if (cold()) {
                    return shuttingDown();
                  }
                  startDirectoryCopy();
                  return dirtyTracking();
                })
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Refused,
                m ->
                    finish(
                        MigrationOutcome.ROLLED_BACK,
                        "refused by "
                            + run.destination
                            + ": "
                            + ((TargetProtocol.Refused) m.reply()).reason()
                            + "; nothing was changed"))
            .onMessage(Cancel.class, m -> cancelBeforeStart(m))
            .onMessage(
                PhaseTimeout.class,
                m ->
                    finish(
                        MigrationOutcome.ROLLED_BACK,
                        "no agent answered on "
                            + run.destination
                            + " within "
                            + services.settings().migration().timeouts().contact().toSeconds()
                            + " s; nothing was changed")));
  }

  private void findDestinationAgent() {
    ctx.ask(
        Receptionist.Listing.class,
        ctx.getSystem().receptionist(),
        Duration.ofSeconds(5),
        ref -> Receptionist.find(AgentProtocol.agentKey(run.destination), ref),
        (listing, err) ->
            new AgentListing(
                listing == null
                    ? Set.of()
                    : listing.getServiceInstances(AgentProtocol.agentKey(run.destination))));
  }

  /**
   * Starts copying the VM directories, minus the writable disks, to the destination. It runs
   * alongside the dirty tracking and the disk copies; {@link #copying} waits for it.
   */
  private void startDirectoryCopy() {
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
      for (ManifestDisk d : run.manifest.writableDisks()) {
        Path p = Path.of(d.path());
        if (p.getParent().toString().equals(dir)) {
          excludes.add("/" + p.getFileName());
        }
      }
      if (!excludes.contains(OverlayOps.EXCLUDE)) {
        excludes.add(OverlayOps.EXCLUDE);
      }
      if (!services.settings().migration().copyWholeVmDirectory()) {
        continue;
      }
      CopyPipelines.Copy copy =
          pipelines.rsyncDirectory(
              Path.of(dir),
              List.copyOf(excludes),
              run.destination,
              run.options.bandwidthBytesPerSecond(),
              run.manifest.ancillaryBytes(),
              run.ancillaryDone);
      run.ancillaryCopies.add(copy);
      copies.add(copy.done.toCompletableFuture());
    }
    if (!services.settings().migration().copyWholeVmDirectory()) {
      // a shared directory: only what the disks need (backing files, read-only disks)
      for (ManifestDisk d : run.manifest.disks()) {
        List<String> files = new ArrayList<>(d.backingChain());
        if (!d.writable()) {
          files.add(d.path());
        }
        for (String f : files) {
          CopyPipelines.Copy copy =
              pipelines.rsync(
                  Path.of(f),
                  run.destination,
                  CopyPipelines.RsyncMode.SPARSE_COPY,
                  run.options.bandwidthBytesPerSecond(),
                  run.manifest.ancillaryBytes(),
                  run.ancillaryDone);
          run.ancillaryCopies.add(copy);
          copies.add(copy.done.toCompletableFuture());
        }
      }
    }
    run.ancillaryPending = true;
    ctx.pipeToSelf(
        CompletableFuture.allOf(copies.toArray(CompletableFuture[]::new)),
        (ok, err) -> new StepDone("ancillary", null, err));
  }

  /** Adds a persistent dirty bitmap to every disk the delta will sync, before the bulk copy. */
  private Behavior<Command> dirtyTracking() {
    List<ManifestDisk> delta =
        run.manifest.writableDisks().stream().filter(this::wantsDelta).toList();
    if (delta.isEmpty()) {
      return copying();
    }
    enter(
        MigrationPhase.DIRTY_TRACKING,
        "adding dirty bitmaps",
        services.settings().tools().commandTimeout());
    blocking(
        "bitmaps",
        () -> {
          for (ManifestDisk d : delta) {
            String node = run.blockNodes.get(d.path());
            if (node == null) {
              throw new MigrationFailure("QEMU has no block node for " + d.path());
            }
            source.addBitmap(run.vm, node, bitmapName());
            run.bitmapsAdded = true;
          }
          return null;
        });
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                StepDone.class,
                m -> m.step().equals("bitmaps"),
                m -> {
                  if (run.bitmapsAdded) {
                    journal.append(
                        run.id,
                        MigrationJournal.Role.SOURCE,
                        JournalEntry.fact(
                            "bitmaps-added", "dirty-tracking", Map.of("bitmap", bitmapName())));
                  }
                  if (m.error() != null) {
                    return rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "adding dirty bitmaps failed: " + MigrationFailure.reason(m.error()));
                  }
                  return copying();
                })
            .onMessage(Cancel.class, this::cancelAndRollBack)
            .onMessage(
                PhaseTimeout.class,
                m -> rollingBack(MigrationOutcome.ROLLED_BACK, "adding dirty bitmaps timed out")));
  }

  /** One DiskSyncActor per writable disk copies its file while the VM runs. */
  private Behavior<Command> copying() {
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
              wantsDelta(d) ? Optional.of(bitmapName()) : Optional.empty(),
              run.options.bulkCopy() == dev.ferry.protocol.BulkCopyMethod.RSYNC,
              wantsDelta(d) || cold() ? 0 : run.options.warmPasses(),
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
    enter(
        MigrationPhase.BULK_COPY,
        "copying " + writable.size() + " disk(s) while " + run.vm + " runs",
        copyTimeout(bytes));
    Set<String> pending = new HashSet<>(run.disks.keySet());
    if (run.ancillaryError != null) {
      return rollingBack(
          MigrationOutcome.ROLLED_BACK,
          "copying the VM directory failed: " + MigrationFailure.reason(run.ancillaryError));
    }
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                StepDone.class,
                m -> m.step().equals("ancillary"),
                m -> {
                  recordDirectoryCopy(m);
                  if (m.error() != null) {
                    return rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "copying the VM directory failed: " + MigrationFailure.reason(m.error()));
                  }
                  return pending.isEmpty() ? copied() : Behaviors.same();
                })
            .onMessage(
                Disk.class,
                m -> m.event() instanceof DiskSyncActor.BulkCopied,
                m -> {
                  DiskSyncActor.BulkCopied b = (DiskSyncActor.BulkCopied) m.event();
                  run.bulkMethod.put(b.target(), b.method());
                  run.bulkBytes.put(b.target(), b.bytes());
                  pending.remove(b.target());
                  return pending.isEmpty() && !run.ancillaryPending ? copied() : Behaviors.same();
                })
            .onMessage(
                Disk.class,
                m -> m.event() instanceof DiskSyncActor.Failed,
                m -> {
                  DiskSyncActor.Failed f = (DiskSyncActor.Failed) m.event();
                  return rollingBack(
                      MigrationOutcome.ROLLED_BACK,
                      "copying " + f.target() + " failed: " + f.reason());
                })
            .onMessage(
                DiskStopped.class,
                m -> run.disks.containsKey(m.target()),
                m ->
                    rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "the copy of " + m.target() + " stopped unexpectedly"))
            .onMessage(Cancel.class, this::cancelAndRollBack)
            .onMessage(
                PhaseTimeout.class,
                m -> rollingBack(MigrationOutcome.ROLLED_BACK, "the bulk copy timed out")));
  }

  // ---------------------------------------------------------------- cold strategy

  /**
   * Cold strategy: the ACPI power button, then the domain's state until it is shut off. A guest
   * that ignores the button is never forced off: the move rolls back and it keeps running.
   */
  private Behavior<Command> shuttingDown() {
    Duration limit = services.settings().migration().timeouts().shutdown();
    enter(MigrationPhase.SHUTTING_DOWN, "asking " + run.vm + " to power off (ACPI)", limit);
    blocking(
        "shutdown",
        () -> {
          run.shutdownRequested = true; // journaled first: a crash may come mid-call
          journal.append(
              run.id,
              MigrationJournal.Role.SOURCE,
              JournalEntry.of("cold-shutdown", "shutting-down", null));
          run.sourceSuspendedAt = System.currentTimeMillis();
          if (source.state(run.vm).active()) {
            services.hypervisor().shutdown(run.vm);
          }
          return null;
        });
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                StepDone.class,
                m -> m.step().equals("shutdown"),
                m -> {
                  if (m.error() != null) {
                    return rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "pressing the ACPI power button of "
                            + run.vm
                            + " failed: "
                            + MigrationFailure.reason(m.error()));
                  }
                  blocking("shutdown-state", () -> source.state(run.vm)); // off already?
                  return Behaviors.same();
                })
            .onMessage(
                PollShutdown.class,
                m -> {
                  blocking("shutdown-state", () -> source.state(run.vm));
                  return Behaviors.same();
                })
            .onMessage(
                StepDone.class,
                m -> m.step().equals("shutdown-state"),
                m -> {
                  if (m.error() == null && m.value() == DomainState.SHUTOFF) {
                    journal.append(
                        run.id,
                        MigrationJournal.Role.SOURCE,
                        JournalEntry.of("shut-off", "shutting-down", null));
                    startDirectoryCopy();
                    return copying();
                  }
                  return pollShutdown();
                })
            .onMessage(Cancel.class, this::cancelAndRollBack)
            .onMessage(
                PhaseTimeout.class,
                m ->
                    rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        run.vm
                            + " did not power off within "
                            + limit.toSeconds()
                            + " s of the ACPI button; it was not forced (it may still power off"
                            + " if its shutdown is under way)")));
  }

  private Behavior<Command> pollShutdown() {
    timers.startSingleTimer(PollShutdown.class, new PollShutdown(), Duration.ofMillis(500));
    return Behaviors.same();
  }

  /**
   * Cold strategy: the destination defines the guest from this host's persistent XML, redefines its
   * snapshots and boots it; then the definition here goes. Once the boot was asked for, a silent
   * destination leaves the guest off on both hosts rather than risk running it twice.
   */
  private Behavior<Command> startingOnDestination() {
    enter(
        MigrationPhase.STARTING,
        "booting " + run.vm + " on " + run.destination + " with its snapshot metadata",
        services.settings().migration().timeouts().verify());
    blocking("domain-xml", () -> services.hypervisor().definition(run.vm, true).xml());
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                StepDone.class,
                m -> m.step().equals("domain-xml"),
                m -> {
                  if (m.error() != null) {
                    return rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "reading the definition of "
                            + run.vm
                            + " failed: "
                            + MigrationFailure.reason(m.error()));
                  }
                  run.coldStartRequested = true;
                  journal.append(
                      run.id,
                      MigrationJournal.Role.SOURCE,
                      JournalEntry.of("cold-start-requested", "starting", null));
                  run.target.tell(new TargetProtocol.StartCold((String) m.value(), targetReplies));
                  return Behaviors.same();
                })
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.ColdStarted,
                m -> {
                  TargetProtocol.ColdStarted c = (TargetProtocol.ColdStarted) m.reply();
                  run.verification = c.verification();
                  run.resumedAt = c.startedAtMillis();
                  return undefiningOnSource();
                })
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Failed,
                m ->
                    rollingBack(
                        MigrationOutcome.ROLLED_BACK, ((TargetProtocol.Failed) m.reply()).reason()))
            .onMessage(
                Cancel.class, m -> run.coldStartRequested ? refuseCancel(m) : cancelAndRollBack(m))
            .onMessage(
                TargetGone.class,
                m ->
                    finish(
                        MigrationOutcome.FAILED,
                        "the agent on "
                            + run.destination
                            + " stopped while booting "
                            + run.vm
                            + "; "
                            + whereIsTheColdVm()))
            .onMessage(
                PhaseTimeout.class,
                m ->
                    finish(
                        MigrationOutcome.FAILED,
                        run.destination
                            + " did not report the boot in time; "
                            + whereIsTheColdVm())));
  }

  /** Cold strategy: the guest runs verified on the destination; its old definition goes. */
  private Behavior<Command> undefiningOnSource() {
    journal.append(
        run.id, MigrationJournal.Role.SOURCE, JournalEntry.of("cold-started", "starting", null));
    blocking(
        "undefine-source",
        () -> {
          services.hypervisor().undefine(run.vm);
          return null;
        });
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                StepDone.class,
                m -> m.step().equals("undefine-source"),
                m -> {
                  if (m.error() != null) {
                    run.note(
                        "removing the shut-off definition on "
                            + services.settings().host()
                            + " failed ("
                            + MigrationFailure.reason(m.error())
                            + "): undefine it there, never start it");
                  }
                  return acknowledgingNow();
                })
            .onMessage(Cancel.class, this::refuseCancel)
            .onMessage(PhaseTimeout.class, m -> Behaviors.same()));
  }

  // ---------------------------------------------------------------- overlay strategy

  /**
   * Freezes every writable disk under a temporary overlay (one atomic, disk-only snapshot without
   * libvirt metadata): the files become read-only backing files, consistent, snapshots inside.
   */
  private Behavior<Command> creatingOverlays() {
    enter(
        MigrationPhase.CREATING_OVERLAYS,
        "freezing the disks under temporary overlays",
        services.settings().tools().commandTimeout());
    run.overlays = OverlayOps.plan(run.manifest);
    blocking(
        "overlays",
        () -> {
          run.overlaysCreated = true; // journaled first: a crash may come mid-call
          journal.append(
              run.id,
              MigrationJournal.Role.SOURCE,
              JournalEntry.of("overlays-created", "creating-overlays", null));
          new OverlayOps(services).createOnSource(run.vm, run.manifest, run.overlays);
          return null;
        });
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                StepDone.class,
                m -> m.step().equals("overlays"),
                m -> {
                  if (m.error() != null) {
                    return rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "creating the overlays failed: " + MigrationFailure.reason(m.error()));
                  }
                  startDirectoryCopy();
                  return copying();
                })
            .onMessage(Cancel.class, this::cancelAndRollBack)
            .onMessage(
                PhaseTimeout.class,
                m -> rollingBack(MigrationOutcome.ROLLED_BACK, "creating the overlays timed out")));
  }

  /** The destination proves the frozen copies against the manifest before anything switches. */
  private Behavior<Command> verifyingCopies() {
    enter(
        MigrationPhase.VERIFYING_COPIES,
        "verifying the copies on " + run.destination,
        services.settings().migration().timeouts().verify());
    run.target.tell(new TargetProtocol.VerifyCopies(targetReplies));
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.CopiesVerified,
                m -> cold() ? startingOnDestination() : preparingOverlays())
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Failed,
                m ->
                    rollingBack(
                        MigrationOutcome.ROLLED_BACK, ((TargetProtocol.Failed) m.reply()).reason()))
            .onMessage(Cancel.class, this::cancelAndRollBack)
            .onMessage(
                PhaseTimeout.class,
                m -> rollingBack(MigrationOutcome.ROLLED_BACK, "verifying the copies timed out")));
  }

  /** Fresh overlays on the destination, immediately before the memory migration. */
  private Behavior<Command> preparingOverlays() {
    run.target.tell(new TargetProtocol.CreateOverlays(run.overlays, targetReplies));
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.OverlaysCreated,
                m -> migratingMemory())
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Failed,
                m ->
                    rollingBack(
                        MigrationOutcome.ROLLED_BACK, ((TargetProtocol.Failed) m.reply()).reason()))
            .onMessage(Cancel.class, this::cancelAndRollBack)
            .onMessage(
                PhaseTimeout.class,
                m ->
                    rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "creating the destination overlays timed out")));
  }

  /**
   * The VM runs on the destination, on its overlays; the destination merges them and proves the
   * result. Nothing is acknowledged before that: until then only the journal holds the snapshot
   * metadata, and a restart from a definition naming the original file would roll the disk back.
   */
  private Behavior<Command> merging() {
    run.switchoverStarted = true;
    journal.append(
        run.id,
        MigrationJournal.Role.SOURCE,
        JournalEntry.of("switched-over", "merging", "libvirt's migration call returned"));
    enter(
        MigrationPhase.MERGING,
        "merging the overlays on " + run.destination,
        services
            .settings()
            .migration()
            .timeouts()
            .verify()
            .plus(copyTimeout(run.manifest.totalBytes())));
    run.target.tell(new TargetProtocol.MergeOverlays(run.overlays, targetReplies));
    return withMergeResult(
        Behaviors.receive(Command.class)
            .onMessage(TargetGone.class, m -> awaitingRecoveredTarget(0))
            .onMessage(
                PhaseTimeout.class,
                m ->
                    finish(
                        MigrationOutcome.FAILED,
                        run.vm
                            + " runs on "
                            + run.destination
                            + " but the merge did not finish in time; the agent there finishes it when it restarts")));
  }

  private Behavior<Command> withMergeResult(BehaviorBuilder<Command> state) {
    return withCommon(
        state
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Merged,
                m -> {
                  TargetProtocol.Merged r = (TargetProtocol.Merged) m.reply();
                  run.resumedAt = r.resumedAtMillis();
                  run.mergedAt = r.mergedAtMillis();
                  run.verification = r.verification();
                  recordOverlayMerged();
                  return acknowledging();
                })
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Failed,
                m ->
                    finish(
                        MigrationOutcome.FAILED,
                        run.vm
                            + " runs on "
                            + run.destination
                            + " on its temporary overlay chain (consistent), but: "
                            + ((TargetProtocol.Failed) m.reply()).reason()
                            + "; the agent there finishes the merge when it restarts"))
            .onMessage(Cancel.class, this::refuseCancel));
  }

  /** In the overlay flow each disk's last writes travel in its overlay, mirrored then committed. */
  private void recordOverlayMerged() {
    for (TargetProtocol.OverlaySpec o : run.overlays) {
      run.finalMethod.put(o.target(), o.shallow() ? "overlay-commit-shallow" : "overlay-commit");
    }
  }

  private record RetryQuery() implements Command {}

  private record Queried(AgentProtocol.IncomingStatus status) implements Command {}

  /**
   * The destination's agent stopped while merging. The VM keeps running there on a consistent
   * chain; when the agent restarts it finishes the merge from its journal. Ask it until it says.
   */
  private Behavior<Command> awaitingRecoveredTarget(int polls) {
    if (polls == 0) {
      ctx.getLog()
          .warn(
              "{}: the agent on {} stopped during the merge; waiting for it to finish after its restart",
              run.vm,
              run.destination);
      run.note("the agent on " + run.destination + " restarted during the merge and finished it");
    }
    timers.startSingleTimer(RetryQuery.class, new RetryQuery(), Duration.ofSeconds(2));
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                RetryQuery.class,
                m -> {
                  ctx.ask(
                      Receptionist.Listing.class,
                      ctx.getSystem().receptionist(),
                      Duration.ofSeconds(5),
                      ref -> Receptionist.find(AgentProtocol.agentKey(run.destination), ref),
                      (listing, err) ->
                          new AgentListing(
                              listing == null
                                  ? Set.of()
                                  : listing.getServiceInstances(
                                      AgentProtocol.agentKey(run.destination))));
                  return Behaviors.same();
                })
            .onMessage(
                AgentListing.class,
                m -> {
                  if (m.agents().isEmpty()) {
                    return awaitingRecoveredTarget(polls + 1);
                  }
                  ctx.ask(
                      AgentProtocol.IncomingStatus.class,
                      m.agents().iterator().next(),
                      Duration.ofSeconds(5),
                      ref -> new AgentProtocol.QueryIncoming(run.id, ref),
                      (status, err) -> status == null ? new RetryQuery() : new Queried(status));
                  return Behaviors.same();
                })
            .onMessage(
                Queried.class,
                m -> {
                  AgentProtocol.IncomingStatus st = m.status();
                  if (st.state().equals("merged")) {
                    run.resumedAt = st.resumedAtMillis();
                    run.verification = st.verification();
                    recordOverlayMerged();
                    return acknowledging();
                  }
                  if (st.state().equals("aborted")) {
                    return finish(
                        MigrationOutcome.FAILED,
                        "the destination reports the incoming migration aborted after the switchover: "
                            + st.detail()
                            + "; "
                            + whereIsTheVm());
                  }
                  return awaitingRecoveredTarget(polls + 1);
                })
            .onMessage(Cancel.class, this::refuseCancel)
            .onMessage(
                PhaseTimeout.class,
                m ->
                    finish(
                        MigrationOutcome.FAILED,
                        run.vm
                            + " runs on "
                            + run.destination
                            + " on its overlay chain; its agent did not report the merge in time")));
  }

  /**
   * Rollback before the switchover: merge the overlays back into the source's files, as the
   * destination would have (TESTBED-OVERLAY.md section 6); an aborted commit is harmless and is
   * retried.
   */
  private Behavior<Command> mergingBackOnSource(
      MigrationOutcome outcome, String cause, List<String> undone) {
    ctx.spawnAnonymous(
        OverlayMergeActor.create(
            run.vm,
            run.overlays,
            new OverlayOps(services),
            0,
            services.settings().migration().mergeAttempts(),
            services.blocking(),
            ctx.messageAdapter(OverlayMergeActor.Result.class, MergedBack::new)));
    return Behaviors.receive(Command.class)
        .onMessage(
            MergedBack.class,
            m -> {
              if (m.result() instanceof OverlayMergeActor.Failed f) {
                undone.add(
                    "the overlays could not be merged back ("
                        + f.reason()
                        + "): "
                        + run.vm
                        + " runs on "
                        + services.settings().host()
                        + " on a consistent two-file chain");
              } else {
                undone.add("overlays merged back");
                run.overlaysCreated = false;
              }
              return undoOnSource(outcome, cause, undone);
            })
        .onMessage(Watch.class, this::onWatch)
        .onMessage(Cancel.class, this::refuseCancelRollingBack)
        .onMessage(Tick.class, t -> publishTick())
        .onAnyMessage(x -> Behaviors.same())
        .build();
  }

  private record MergedBack(OverlayMergeActor.Result result) implements Command {}

  /** Every disk and the VM directory arrived: on to the switchover, unless it is too late. */
  private Behavior<Command> copied() {
    journal.append(
        run.id,
        MigrationJournal.Role.SOURCE,
        JournalEntry.of("copied", "bulk-copy", run.bulkBytes.toString()));
    if (pastDeadline()) {
      return rollingBack(MigrationOutcome.ROLLED_BACK, "the deadline passed before the switchover");
    }
    return overlay() || cold() ? verifyingCopies() : droppingMetadata(this::migratingMemory);
  }

  private void recordDirectoryCopy(StepDone m) {
    run.ancillaryPending = false;
    run.ancillaryError = m.error();
    run.ancillaryCopies.clear();
  }

  /** libvirt refuses to migrate a domain with snapshot metadata; the manifest keeps it. */
  private Behavior<Command> droppingMetadata(java.util.function.Supplier<Behavior<Command>> next) {
    if (run.manifest.snapshots().isEmpty()) {
      return next.get();
    }
    enter(
        MigrationPhase.DROPPING_METADATA,
        "dropping libvirt snapshot metadata (kept in the journal)",
        services.settings().tools().commandTimeout());
    blocking(
        "drop-metadata",
        () -> {
          run.metadataDropped = true;
          journal.append(
              run.id,
              MigrationJournal.Role.SOURCE,
              JournalEntry.of("metadata-dropping", "dropping-metadata", null));
          source.dropSnapshotMetadata(run.vm, run.manifest.snapshots());
          return null;
        });
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                StepDone.class,
                m -> m.step().equals("drop-metadata"),
                m -> {
                  if (m.error() != null) {
                    return rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "dropping snapshot metadata failed: " + MigrationFailure.reason(m.error()));
                  }
                  return next.get();
                })
            .onMessage(Cancel.class, this::cancelAndRollBack)
            .onMessage(
                PhaseTimeout.class,
                m ->
                    rollingBack(
                        MigrationOutcome.ROLLED_BACK, "dropping snapshot metadata timed out")));
  }

  /**
   * Arms the target (it watches for the paused VM) and the delta appliers, then migrates memory.
   * The final sync starts on the destination's "paused" event, not when libvirt's call returns: the
   * confirm phase on the source (SIGTERM to QEMU until it is reaped) would add seconds of paused
   * time, and the source's files are final once the destination is paused after Finish.
   */
  private Behavior<Command> migratingMemory() {
    long memBytes = run.manifest.memoryKiB() * 1024;
    enter(
        MigrationPhase.MEMORY_MIGRATION,
        "arming the switchover",
        services.settings().migration().timeouts().memory(memBytes));
    run.target.tell(new TargetProtocol.ArmSwitchover(targetReplies));
    // the delta appliers' JVMs start on the destination meanwhile; a final sync waits for its own
    for (DiskJob j : run.jobs) {
      if (j.bitmap().isPresent()) {
        run.disks.get(j.target()).tell(new DiskSyncActor.ArmFinalSync());
      }
    }
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Armed,
                m -> startMemory())
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Failed,
                m ->
                    rollingBack(
                        MigrationOutcome.ROLLED_BACK,
                        "the destination could not arm: "
                            + ((TargetProtocol.Failed) m.reply()).reason()))
            .onMessage(Cancel.class, this::cancelAndRollBack)
            .onMessage(
                PhaseTimeout.class,
                m -> rollingBack(MigrationOutcome.ROLLED_BACK, "arming the switchover timed out")));
  }

  private Behavior<Command> startMemory() {
    run.memoryStarted = true;
    run.memoryLastChangeAt = System.currentTimeMillis();
    journal.append(
        run.id,
        MigrationJournal.Role.SOURCE,
        JournalEntry.of("memory-started", "memory-migration", null));
    publish("migrating memory to " + run.destination);
    // suspend-sync: paused on arrival, files synced by us (libvirt calls that unsafe);
    // overlay: libvirt mirrors the top layer (the overlay) and resumes the VM itself
    EnumSet<MigrationFlag> flags =
        overlay()
            ? EnumSet.of(
                MigrationFlag.LIVE,
                MigrationFlag.PEER2PEER,
                MigrationFlag.PERSIST_DEST,
                MigrationFlag.UNDEFINE_SOURCE,
                MigrationFlag.NON_SHARED_INC)
            : EnumSet.of(
                MigrationFlag.LIVE,
                MigrationFlag.PEER2PEER,
                MigrationFlag.PERSIST_DEST,
                MigrationFlag.UNDEFINE_SOURCE,
                MigrationFlag.PAUSED,
                MigrationFlag.UNSAFE);
    if (run.options.autoConverge()) {
      flags.add(MigrationFlag.AUTO_CONVERGE);
    }
    long bw = run.options.bandwidthBytesPerSecond();
    MigrationRequest request =
        new MigrationRequest(
            services.settings().migration().destinationUri(run.destination),
            flags,
            bw > 0 ? OptionalLong.of(Math.max(1, bw >> 20)) : OptionalLong.empty(),
            overlay()
                ? run.manifest.writableDisks().stream().map(ManifestDisk::target).toList()
                : List.of(),
            Optional.empty());
    ctx.pipeToSelf(
        CompletableFuture.runAsync(
            () -> services.hypervisor().migrate(run.vm, request), services.blocking()),
        (ok, err) -> new MemoryDone(err));
    timers.startTimerAtFixedRate("poll-job", new PollJob(), Duration.ofMillis(500));
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.DestinationPaused,
                m -> {
                  run.destinationPausedAt =
                      ((TargetProtocol.DestinationPaused) m.reply()).atMillis();
                  return switchedOver("the destination is paused after Finish");
                })
            .onMessage(
                MemoryDone.class,
                m -> {
                  run.memoryReturned = true;
                  if (m.error() == null) {
                    return overlay()
                        ? merging()
                        : switchedOver("libvirt's migration call returned");
                  }
                  run.memoryError = m.error();
                  String why =
                      run.cancelRequested
                          ? "cancelled"
                          : "the memory migration failed: " + MigrationFailure.reason(m.error());
                  return rollingBack(
                      run.cancelRequested
                          ? MigrationOutcome.CANCELLED
                          : MigrationOutcome.ROLLED_BACK,
                      why);
                })
            .onMessage(PollJob.class, m -> pollJob())
            .onMessage(JobPolled.class, this::onJobStats)
            .onMessage(
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
            .onMessage(
                PhaseTimeout.class,
                m -> {
                  if (!run.switchoverStarted) {
                    abortJob("the memory migration timed out");
                  }
                  return Behaviors.same();
                }));
  }

  private Behavior<Command> switchedOver(String why) {
    timers.cancel("poll-job");
    run.switchoverStarted = true;
    journal.append(
        run.id, MigrationJournal.Role.SOURCE, JournalEntry.of("switched-over", "final-sync", why));
    run.switchedOverAt = System.currentTimeMillis();
    return finalSync(1);
  }

  /** Makes every destination file match the source's final file, in place, while paused. */
  private Behavior<Command> finalSync(int attempt) {
    enter(
        MigrationPhase.FINAL_SYNC,
        "final sync" + (attempt > 1 ? " (attempt " + attempt + ")" : ""),
        services.settings().migration().timeouts().finalSync());
    run.bitmapsLeft.clear();
    Set<String> pending = new HashSet<>(run.disks.keySet());
    run.disks.values().forEach(d -> d.tell(new DiskSyncActor.FinalSync(attempt > 1)));
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                Disk.class,
                m -> m.event() instanceof DiskSyncActor.FinalSyncDone,
                m -> {
                  DiskSyncActor.FinalSyncDone f = (DiskSyncActor.FinalSyncDone) m.event();
                  run.finalMethod.put(f.target(), f.method());
                  run.finalBytes.put(f.target(), f.bytes());
                  f.bitmapLeft()
                      .ifPresent(
                          b ->
                              run.bitmapsLeft.add(
                                  new TargetProtocol.DiskBitmap(pathOf(f.target()), b)));
                  pending.remove(f.target());
                  if (!pending.isEmpty()) {
                    return Behaviors.same();
                  }
                  journal.append(
                      run.id,
                      MigrationJournal.Role.SOURCE,
                      JournalEntry.of("final-synced", "final-sync", run.finalMethod.toString()));
                  run.finalSyncedAt = System.currentTimeMillis();
                  run.target.tell(
                      new TargetProtocol.FinalSynced(List.copyOf(run.bitmapsLeft), targetReplies));
                  return verifying(attempt);
                })
            .onMessage(
                Disk.class,
                m -> m.event() instanceof DiskSyncActor.Failed,
                m -> {
                  DiskSyncActor.Failed f = (DiskSyncActor.Failed) m.event();
                  run.note(
                      "final sync attempt "
                          + attempt
                          + " of "
                          + f.target()
                          + " failed: "
                          + f.reason());
                  return afterFailedSync(
                      attempt, "final sync of " + f.target() + " failed: " + f.reason());
                })
            .onMessage(
                DiskStopped.class,
                m -> run.disks.containsKey(m.target()),
                m -> migratingBack("the final sync of " + m.target() + " stopped unexpectedly"))
            .onMessage(Cancel.class, this::refuseCancel)
            .onMessage(
                PhaseTimeout.class, m -> afterFailedSync(attempt, "the final sync timed out")));
  }

  private Behavior<Command> afterFailedSync(int attempt, String why) {
    if (attempt < services.settings().migration().finalSyncAttempts()) {
      return finalSync(attempt + 1);
    }
    return migratingBack(why);
  }

  /** The target verifies, redefines snapshot metadata, resumes and checks the open inodes. */
  private Behavior<Command> verifying(int attempt) {
    enter(
        MigrationPhase.VERIFYING,
        "verifying on " + run.destination,
        services.settings().migration().timeouts().verify());
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Resumed,
                m -> {
                  TargetProtocol.Resumed r = (TargetProtocol.Resumed) m.reply();
                  run.resumedAt = r.resumedAtMillis();
                  run.verification = r.verification();
                  return acknowledging();
                })
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.VerificationFailed,
                m -> {
                  TargetProtocol.VerificationFailed f =
                      (TargetProtocol.VerificationFailed) m.reply();
                  run.verification = f.verification();
                  run.note("verification after attempt " + attempt + " failed: " + f.reason());
                  return afterFailedSync(attempt, "verification failed: " + f.reason());
                })
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Failed,
                m -> {
                  String reason = ((TargetProtocol.Failed) m.reply()).reason();
                  // the target only fails after the resume if the VM already runs there
                  return finish(
                      MigrationOutcome.FAILED,
                      "the destination failed after the switchover: "
                          + reason
                          + "; "
                          + whereIsTheVm());
                })
            .onMessage(Cancel.class, this::refuseCancel)
            .onMessage(
                PhaseTimeout.class,
                m ->
                    finish(
                        MigrationOutcome.FAILED,
                        "no answer from "
                            + run.destination
                            + " while verifying; "
                            + whereIsTheVm())));
  }

  /**
   * Verified and running on the destination. The final sync started before libvirt's confirm phase
   * on this host ended (to keep it out of the paused window), so the source's definition may still
   * exist for a second or two; acknowledge once libvirt has removed it, so that "completed" also
   * means the VM is defined on one host only. The VM runs on the destination already: the wait
   * costs no paused time.
   */
  private Behavior<Command> acknowledging() {
    if (!run.memoryStarted || run.memoryReturned) {
      return acknowledgingNow();
    }
    // the domain itself is the fact to wait for: libvirt's call may have returned while this
    // actor was in a state that does not track it
    checkSourceDomain();
    timers.startSingleTimer("confirm-wait", new ConfirmWaitOver(), Duration.ofSeconds(60));
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                MemoryDone.class,
                m -> {
                  run.memoryReturned = true;
                  if (m.error() != null) {
                    run.note(
                        "libvirt reported after the switchover: "
                            + MigrationFailure.reason(m.error()));
                  }
                  return confirmed();
                })
            .onMessage(
                SourceDomainChecked.class,
                m -> {
                  if (m.gone()) {
                    return confirmed();
                  }
                  timers.startSingleTimer(
                      "confirm-poll", new RecheckSourceDomain(), Duration.ofMillis(500));
                  return Behaviors.same();
                })
            .onMessage(
                RecheckSourceDomain.class,
                m -> {
                  checkSourceDomain();
                  return Behaviors.same();
                })
            .onMessage(
                ConfirmWaitOver.class,
                m -> {
                  run.note(
                      "libvirt's migration call on "
                          + services.settings().host()
                          + " had not returned 60 s after the resume; the source's definition may"
                          + " remain until it does");
                  return confirmed();
                }));
  }

  private void checkSourceDomain() {
    ctx.pipeToSelf(
        CompletableFuture.supplyAsync(
            () -> services.hypervisor().lookup(run.vm).isEmpty(), services.blocking()),
        // a lookup that fails must not hold the acknowledgement back
        (gone, err) -> new SourceDomainChecked(err != null || gone));
  }

  private Behavior<Command> confirmed() {
    timers.cancel("confirm-wait");
    timers.cancel("confirm-poll");
    return acknowledgingNow();
  }

  /** Tell the watchers, then remove the source's files. */
  private Behavior<Command> acknowledgingNow() {
    journal.append(
        run.id,
        MigrationJournal.Role.SOURCE,
        JournalEntry.of("acknowledged", "source-cleanup", null));
    MigrationResult result =
        result(
            MigrationOutcome.COMPLETED,
            run.destination,
            "verified and running on "
                + run.destination
                + (overlay() ? overlayBreakdown() : cold() ? coldBreakdown() : pausedBreakdown()));
    announce(result);
    stopDisks();
    enter(
        MigrationPhase.SOURCE_CLEANUP,
        "removing the source's files",
        services.settings().tools().commandTimeout());
    boolean remove = services.settings().migration().removeSourceFiles();
    blocking(
        "cleanup",
        () -> {
          List<String> removed =
              new ArrayList<>(remove ? source.removeFiles(run.manifest) : List.of());
          for (TargetProtocol.OverlaySpec o : run.overlays) {
            if (java.nio.file.Files.deleteIfExists(services.files().local(o.overlay()))) {
              removed.add(o.overlay());
            }
          }
          return removed;
        });
    return Behaviors.receive(Command.class)
        .onMessage(
            StepDone.class,
            m -> m.step().equals("cleanup"),
            m -> {
              if (m.error() != null) {
                ctx.getLog()
                    .warn(
                        "{}: removing the source's files failed: {}",
                        run.vm,
                        MigrationFailure.reason(m.error()));
              }
              MigrationResult finalResult =
                  m.error() == null
                      ? result
                      : result(
                          MigrationOutcome.COMPLETED,
                          run.destination,
                          result.message()
                              + "; removing the source's files failed: "
                              + MigrationFailure.reason(m.error()));
              journal.append(
                  run.id, MigrationJournal.Role.SOURCE, JournalEntry.finished(finalResult));
              run.target.tell(new TargetProtocol.Release(MigrationOutcome.COMPLETED.name()));
              return awaitMemoryCallThenStop(finalResult);
            })
        .onMessage(
            Watch.class,
            m -> {
              m.watcher().tell(new MigrationEvent.Finished(result));
              return Behaviors.same();
            })
        .onMessage(Cancel.class, this::refuseCancel)
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /**
   * libvirt's migration call returns only after its confirm phase on this host (QEMU reaped); wait
   * for it, so that a failure there is logged, not lost with the actor.
   */
  private Behavior<Command> awaitMemoryCallThenStop(MigrationResult result) {
    if (!run.memoryStarted || run.memoryReturned) {
      return Behaviors.stopped();
    }
    timers.startSingleTimer(
        PhaseTimeout.class, new PhaseTimeout(MigrationPhase.FINISHED), Duration.ofMinutes(2));
    return Behaviors.receive(Command.class)
        .onMessage(
            MemoryDone.class,
            m -> {
              if (m.error() != null) {
                ctx.getLog()
                    .warn(
                        "{}: libvirt's confirm phase reported: {}",
                        run.vm,
                        MigrationFailure.reason(m.error()));
              }
              return Behaviors.stopped();
            })
        .onMessage(
            PhaseTimeout.class,
            m -> {
              ctx.getLog()
                  .warn(
                      "{}: libvirt's migration call had not returned 2 minutes after the acknowledgement",
                      run.vm);
              return Behaviors.stopped();
            })
        .onMessage(
            Watch.class,
            m -> {
              m.watcher().tell(new MigrationEvent.Finished(result));
              return Behaviors.same();
            })
        .onMessage(Cancel.class, this::refuseCancel)
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  /**
   * Undoes everything done before the switchover, in reverse: copies stopped, the memory job
   * aborted, bitmaps removed, snapshot metadata restored, the destination's files removed.
   */
  private Behavior<Command> rollingBack(MigrationOutcome outcome, String cause) {
    enter(
        MigrationPhase.ROLLING_BACK, cause, services.settings().migration().timeouts().rollback());
    timers.cancel("poll-job");
    journal.append(
        run.id,
        MigrationJournal.Role.SOURCE,
        JournalEntry.of("rolling-back", "rolling-back", cause));
    stopDisks();
    run.ancillaryCopies.forEach(CopyPipelines.Copy::cancel);
    List<String> undone = new ArrayList<>();
    if (run.memoryStarted && !run.memoryReturned) {
      abortJob("rolling back");
      // wait for libvirt's migration call to return before touching the domain
      return Behaviors.receive(Command.class)
          .onMessage(
              MemoryDone.class,
              m -> {
                run.memoryReturned = true;
                if (m.error() == null) {
                  // the migration finished after all: the VM is on the destination, paused
                  return switchedOver(
                      "the memory migration completed before the abort took effect");
                }
                return overlaysToMergeBack()
                    ? mergingBackOnSource(outcome, cause, undone)
                    : undoOnSource(outcome, cause, undone);
              })
          .onMessage(
              FromTarget.class,
              m -> m.reply() instanceof TargetProtocol.DestinationPaused,
              m -> {
                run.memoryReturned = true;
                return switchedOver("the destination paused before the abort took effect");
              })
          .onMessage(Watch.class, this::onWatch)
          .onMessage(Cancel.class, this::refuseCancelRollingBack)
          .onMessage(Tick.class, m -> publishTick())
          .onMessage(
              PhaseTimeout.class,
              m ->
                  finish(
                      MigrationOutcome.FAILED,
                      cause + "; the memory job did not end after an abort; " + whereIsTheVm()))
          .onAnyMessage(m -> Behaviors.same())
          .build();
    }
    return overlaysToMergeBack()
        ? mergingBackOnSource(outcome, cause, undone)
        : undoOnSource(outcome, cause, undone);
  }

  /**
   * The merge actor's first step checks (off this thread) whether each disk is still on its
   * overlay.
   */
  private boolean overlaysToMergeBack() {
    return run.overlaysCreated;
  }

  private Behavior<Command> undoOnSource(
      MigrationOutcome outcome, String cause, List<String> undone) {
    blocking(
        "undo-source",
        () -> {
          DomainState state = source.state(run.vm);
          if (run.bitmapsAdded && state.active()) {
            for (ManifestDisk d : run.manifest.writableDisks()) {
              String node = run.blockNodes.get(d.path());
              if (node != null && wantsDelta(d)) {
                try {
                  source.removeBitmap(run.vm, node, bitmapName());
                } catch (RuntimeException e) {
                  undone.add("bitmap on " + d.target() + " not removed: " + e.getMessage());
                }
              }
            }
            undone.add("dirty bitmaps removed");
          }
          if (run.metadataDropped) {
            source.restoreSnapshotMetadata(run.vm, run.manifest);
            undone.add("snapshot metadata restored");
          }
          if (state == DomainState.PAUSED) {
            services.hypervisor().resume(run.vm);
            undone.add(run.vm + " resumed");
          }
          return null;
        });
    return Behaviors.receive(Command.class)
        .onMessage(
            StepDone.class,
            m -> m.step().equals("undo-source"),
            m -> {
              if (m.error() != null) {
                undone.add(
                    "undoing on "
                        + services.settings().host()
                        + " failed: "
                        + MigrationFailure.reason(m.error()));
              }
              if (run.target == null) {
                return afterDestinationUndone(
                    outcome, cause, undone, m.error() == null, !run.coldStartRequested);
              }
              run.target.tell(new TargetProtocol.Abort(cause, targetReplies));
              return Behaviors.receive(Command.class)
                  .onMessage(
                      FromTarget.class,
                      r -> r.reply() instanceof TargetProtocol.Aborted,
                      r -> {
                        int n = ((TargetProtocol.Aborted) r.reply()).removed().size();
                        undone.add(n + " file(s) of this migration removed on " + run.destination);
                        return afterDestinationUndone(
                            outcome, cause, undone, m.error() == null, true);
                      })
                  .onMessage(
                      FromTarget.class,
                      r -> r.reply() instanceof TargetProtocol.Failed,
                      r -> {
                        undone.add(
                            "the destination could not clean up: "
                                + ((TargetProtocol.Failed) r.reply()).reason());
                        return afterDestinationUndone(
                            outcome, cause, undone, m.error() == null, false);
                      })
                  .onMessage(
                      TargetGone.class,
                      r -> {
                        undone.add(
                            "the destination agent is gone; it removes its leftovers when it restarts");
                        return afterDestinationUndone(
                            outcome, cause, undone, m.error() == null, !run.coldStartRequested);
                      })
                  .onMessage(
                      PhaseTimeout.class,
                      r -> {
                        undone.add("the destination did not confirm its clean-up");
                        return afterDestinationUndone(
                            outcome, cause, undone, m.error() == null, !run.coldStartRequested);
                      })
                  .onMessage(Watch.class, this::onWatch)
                  .onMessage(Cancel.class, this::refuseCancelRollingBack)
                  .onMessage(Tick.class, t -> publishTick())
                  .onAnyMessage(x -> Behaviors.same())
                  .build();
            })
        .onMessage(Watch.class, this::onWatch)
        .onMessage(Cancel.class, this::refuseCancelRollingBack)
        .onMessage(Tick.class, t -> publishTick())
        .onMessage(
            PhaseTimeout.class,
            m -> finish(MigrationOutcome.FAILED, cause + "; undoing timed out; " + whereIsTheVm()))
        .onAnyMessage(x -> Behaviors.same())
        .build();
  }

  /**
   * Cold strategy: a guest shut off for the move runs again on this host only if the destination
   * cannot be running it: it confirmed its clean-up, or it was never asked to boot it.
   */
  private Behavior<Command> afterDestinationUndone(
      MigrationOutcome outcome,
      String cause,
      List<String> undone,
      boolean sourceOk,
      boolean destinationClear) {
    if (!cold() || !run.shutdownRequested) {
      return finishRollback(outcome, cause, undone, sourceOk);
    }
    if (!destinationClear) {
      return finish(
          MigrationOutcome.FAILED,
          cause
              + (undone.isEmpty() ? "" : "; " + String.join("; ", undone))
              + "; "
              + whereIsTheColdVm());
    }
    blocking(
        "restart-source",
        () -> {
          if (source.state(run.vm).active()) {
            return false; // it never powered off
          }
          services.hypervisor().start(run.vm);
          return true;
        });
    return Behaviors.receive(Command.class)
        .onMessage(
            StepDone.class,
            m -> m.step().equals("restart-source"),
            m -> {
              if (m.error() != null) {
                undone.add(
                    "starting "
                        + run.vm
                        + " again failed: "
                        + MigrationFailure.reason(m.error())
                        + "; it is shut off on "
                        + services.settings().host()
                        + " with its files intact");
                return finishRollback(outcome, cause, undone, false);
              }
              if (Boolean.TRUE.equals(m.value())) {
                undone.add(run.vm + " started again");
              }
              return finishRollback(outcome, cause, undone, sourceOk);
            })
        .onMessage(Watch.class, this::onWatch)
        .onMessage(Cancel.class, this::refuseCancelRollingBack)
        .onMessage(Tick.class, t -> publishTick())
        .onMessage(
            PhaseTimeout.class,
            m ->
                finish(
                    MigrationOutcome.FAILED,
                    cause + "; starting " + run.vm + " again timed out; " + whereIsTheColdVm()))
        .onAnyMessage(x -> Behaviors.same())
        .build();
  }

  private Behavior<Command> finishRollback(
      MigrationOutcome outcome, String cause, List<String> undone, boolean sourceOk) {
    String message = cause + (undone.isEmpty() ? "" : "; " + String.join("; ", undone));
    if (!sourceOk) {
      return finish(MigrationOutcome.FAILED, message + "; " + whereIsTheVm());
    }
    return finish(outcome, message + "; " + run.vm + " runs on " + services.settings().host());
  }

  /**
   * Verification failed after the switchover: the paused VM's memory goes back to the source, whose
   * files were never touched, and it resumes there.
   */
  private Behavior<Command> migratingBack(String cause) {
    enter(
        MigrationPhase.MIGRATING_BACK,
        cause + ": migrating " + run.vm + " back",
        services.settings().migration().timeouts().memory(run.manifest.memoryKiB() * 1024));
    journal.append(
        run.id,
        MigrationJournal.Role.SOURCE,
        JournalEntry.of("migrating-back", "migrating-back", cause));
    stopDisks();
    if (run.memoryStarted && !run.memoryReturned) {
      // until libvirt's call returns, the confirm phase still holds this host's domain object,
      // and an incoming migration of the same domain would be refused
      return Behaviors.receive(Command.class)
          .onMessage(
              MemoryDone.class,
              m -> {
                run.memoryReturned = true;
                return sendBack(cause);
              })
          .onMessage(Watch.class, this::onWatch)
          .onMessage(Cancel.class, this::refuseCancel)
          .onMessage(Tick.class, m -> publishTick())
          .onMessage(
              PhaseTimeout.class,
              m ->
                  finish(
                      MigrationOutcome.FAILED,
                      cause + "; libvirt's migration call never returned; " + whereIsTheVm()))
          .onAnyMessage(m -> Behaviors.same())
          .build();
    }
    return sendBack(cause);
  }

  private Behavior<Command> sendBack(String cause) {
    run.target.tell(new TargetProtocol.MigrateBack(services.settings().host(), targetReplies));
    return withCommon(
        Behaviors.receive(Command.class)
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.MigratedBack,
                m -> {
                  ctx.unwatch(run.target); // its part is done; it stops when released
                  blocking(
                      "resume-here",
                      () -> {
                        for (ManifestDisk d : run.manifest.writableDisks()) {
                          if (wantsDelta(d) && run.bitmapsAdded) {
                            // the source QEMU stored the bitmap in the file when it stopped; the
                            // image is
                            // inactive until the resume, so qemu-img may edit it
                            if (services
                                .images()
                                .info(
                                    Path.of(d.path()), dev.ferry.node.image.ImageTool.Access.SHARED)
                                .bitmaps()
                                .contains(bitmapName())) {
                              services.images().removeBitmap(Path.of(d.path()), bitmapName());
                            }
                          }
                        }
                        source.restoreSnapshotMetadata(run.vm, run.manifest);
                        services.hypervisor().resume(run.vm);
                        return null;
                      });
                  return Behaviors.same();
                })
            .onMessage(
                StepDone.class,
                m -> m.step().equals("resume-here"),
                m -> {
                  if (m.error() != null) {
                    return finish(
                        MigrationOutcome.FAILED,
                        cause
                            + "; migrated back to "
                            + services.settings().host()
                            + " but resuming failed: "
                            + MigrationFailure.reason(m.error())
                            + "; "
                            + whereIsTheVm());
                  }
                  run.resumedAt = System.currentTimeMillis();
                  return finish(
                      MigrationOutcome.MIGRATED_BACK,
                      cause
                          + "; "
                          + run.vm
                          + " was migrated back and resumed on "
                          + services.settings().host()
                          + " with its snapshot metadata restored");
                })
            .onMessage(
                FromTarget.class,
                m -> m.reply() instanceof TargetProtocol.Failed,
                m ->
                    finish(
                        MigrationOutcome.FAILED,
                        cause
                            + "; migrating back failed: "
                            + ((TargetProtocol.Failed) m.reply()).reason()
                            + "; "
                            + whereIsTheVm()))
            .onMessage(Cancel.class, this::refuseCancel)
            .onMessage(
                PhaseTimeout.class,
                m ->
                    finish(
                        MigrationOutcome.FAILED,
                        cause + "; migrating back timed out; " + whereIsTheVm())));
  }

  // ---------------------------------------------------------------- shared handling

  /**
   * Adds the handlers every working state has (watchers, progress, disk progress, source events,
   * late replies) after the state's own, which therefore win.
   */
  private Behavior<Command> withCommon(BehaviorBuilder<Command> state) {
    return state
        .onMessage(Watch.class, this::onWatch)
        .onMessage(Tick.class, m -> publishTick())
        .onMessage(
            Disk.class,
            m -> m.event() instanceof DiskSyncActor.Progress,
            m -> {
              DiskSyncActor.Progress p = (DiskSyncActor.Progress) m.event();
              run.diskProgress.put(
                  p.target(),
                  new DiskProgress(
                      p.target(), pathOf(p.target()), p.method(), p.bytesDone(), p.bytesTotal()));
              return Behaviors.same();
            })
        .onMessage(
            SourceEvent.class,
            m -> {
              LifecycleEvent e = m.event();
              if (e.is(LifecycleEvent.Type.SUSPENDED, "MIGRATED") && run.sourceSuspendedAt == 0) {
                run.sourceSuspendedAt = e.at().toEpochMilli();
                run.switchoverStarted = true;
              }
              return Behaviors.same();
            })
        .onMessage(
            MemoryDone.class,
            m -> {
              run.memoryReturned = true;
              if (m.error() != null) {
                run.note(
                    "libvirt reported after the switchover: " + MigrationFailure.reason(m.error()));
              }
              return Behaviors.same();
            })
        .onMessage(DiskStopped.class, m -> Behaviors.same())
        .onMessage(
            Disk.class,
            m -> m.event() instanceof DiskSyncActor.Armed,
            m -> {
              DiskSyncActor.Armed a = (DiskSyncActor.Armed) m.event();
              if (!a.note().equals("applier ready") && !a.note().equals("rsync needs no applier")) {
                run.note(a.target() + ": " + a.note());
              }
              return Behaviors.same();
            })
        .onMessage(
            StepDone.class,
            m -> m.step().equals("ancillary"),
            m -> {
              recordDirectoryCopy(m);
              return Behaviors.same();
            })
        .onMessage(PollJob.class, m -> Behaviors.same())
        .onMessage(JobPolled.class, m -> Behaviors.same())
        .onMessage(
            TargetGone.class,
            m -> {
              if (run.phase.beforeSwitchover()) {
                run.target = null;
                return rollingBack(
                    MigrationOutcome.ROLLED_BACK, "the agent on " + run.destination + " stopped");
              }
              return finish(
                  MigrationOutcome.FAILED,
                  "the agent on "
                      + run.destination
                      + " stopped after the switchover; "
                      + whereIsTheVm());
            })
        .onAnyMessage(
            m -> {
              ctx.getLog().debug("{}: ignored in {}: {}", run.vm, run.phase, m);
              return Behaviors.same();
            })
        .build();
  }

  private Behavior<Command> onWatch(Watch m) {
    run.watchers.add(m.watcher());
    m.watcher().tell(new MigrationEvent.Progress(run.progress(services.settings().host(), "")));
    return Behaviors.same();
  }

  private Behavior<Command> cancelBeforeStart(Cancel m) {
    m.replyTo()
        .tell(new AgentProtocol.CancelReply(run.id, true, "cancelled before anything was changed"));
    return finish(MigrationOutcome.CANCELLED, "cancelled: " + m.reason() + "; nothing was changed");
  }

  private Behavior<Command> cancelAndRollBack(Cancel m) {
    m.replyTo().tell(new AgentProtocol.CancelReply(run.id, true, "rolling back"));
    return rollingBack(MigrationOutcome.CANCELLED, "cancelled: " + m.reason());
  }

  private Behavior<Command> refuseCancel(Cancel m) {
    m.replyTo()
        .tell(
            new AgentProtocol.CancelReply(
                run.id,
                false,
                "too late: the switchover happened; "
                    + run.vm
                    + " is being finished on "
                    + run.destination));
    return Behaviors.same();
  }

  private Behavior<Command> refuseCancelRollingBack(Cancel m) {
    m.replyTo().tell(new AgentProtocol.CancelReply(run.id, true, "already rolling back"));
    return Behaviors.same();
  }

  private Behavior<Command> pollJob() {
    ctx.pipeToSelf(
        CompletableFuture.supplyAsync(
            () -> services.hypervisor().jobStats(run.vm), services.blocking()),
        JobPolled::new);
    return Behaviors.same();
  }

  private Behavior<Command> onJobStats(JobPolled m) {
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
      CompletableFuture.runAsync(
          () -> services.hypervisor().setMaxDowntime(run.vm, downtime), services.blocking());
    }
    return Behaviors.same();
  }

  private void abortJob(String why) {
    ctx.getLog().info("{}: aborting the memory migration: {}", run.vm, why);
    run.note("memory migration aborted: " + why);
    CompletableFuture.runAsync(
        () -> {
          try {
            services.hypervisor().abortJob(run.vm);
          } catch (RuntimeException e) {
            // no job (it ended meanwhile): the migration call's own result says what happened
          }
        },
        services.blocking());
  }

  /** Stops every disk actor once (each kills its processes). */
  private void stopDisks() {
    run.disks.values().forEach(d -> d.tell(new DiskSyncActor.Stop()));
    run.disks.clear();
  }

  private Behavior<Command> publishTick() {
    publish("");
    return Behaviors.same();
  }

  private void publish(String message) {
    MigrationEvent.Progress p =
        new MigrationEvent.Progress(run.progress(services.settings().host(), message));
    run.watchers.forEach(w -> w.tell(p));
  }

  private void enter(MigrationPhase phase, String message, Duration timeout) {
    run.phase = phase;
    timers.startSingleTimer(PhaseTimeout.class, new PhaseTimeout(phase), timeout);
    ctx.getLog().info("{} [{}] {}: {}", run.vm, run.id, phase, message);
    if (run.manifest != null) {
      journal.append(
          run.id,
          MigrationJournal.Role.SOURCE,
          JournalEntry.of("phase", phaseName(phase), message));
    }
    publish(message);
  }

  /** Tells the watchers how the migration ended and counts it in this agent's metrics. */
  private void announce(MigrationResult result) {
    EngineMetrics.get(ctx.getSystem()).finished(result);
    run.watchers.forEach(w -> w.tell(new MigrationEvent.Finished(result)));
  }

  private Behavior<Command> finish(MigrationOutcome outcome, String message) {
    run.phase = MigrationPhase.FINISHED;
    String where =
        switch (outcome) {
          case COMPLETED -> run.destination;
          case ROLLED_BACK, CANCELLED, MIGRATED_BACK -> services.settings().host();
          case FAILED -> "";
        };
    MigrationResult result = result(outcome, where, message);
    ctx.getLog().info("{} [{}] finished {}: {}", run.vm, run.id, outcome, message);
    if (run.manifest != null) {
      journal.append(run.id, MigrationJournal.Role.SOURCE, JournalEntry.finished(result));
    }
    announce(result);
    stopDisks();
    if (run.target != null) {
      run.target.tell(new TargetProtocol.Release(outcome.name()));
    }
    return Behaviors.stopped();
  }

  private MigrationResult result(MigrationOutcome outcome, String runningOn, String message) {
    long now = System.currentTimeMillis();
    long paused =
        run.sourceSuspendedAt > 0 && run.resumedAt > 0 ? run.resumedAt - run.sourceSuspendedAt : 0;
    List<String> snapshots =
        run.manifest == null
            ? List.of()
            : run.manifest.snapshots().stream().map(ManifestSnapshot::name).toList();
    String notes = run.notes.isEmpty() ? "" : " (" + String.join("; ", run.notes) + ")";
    return new MigrationResult(
        run.id,
        run.vm,
        services.settings().host(),
        run.destination,
        outcome,
        runningOn,
        message + notes,
        run.options.strategy(),
        run.diskResults(),
        run.verification,
        paused,
        now - run.startedAt,
        run.bytesMoved(),
        run.startedAt,
        now,
        snapshots);
  }

  /** Where the paused window went, for operators and the benchmark. */
  private String pausedBreakdown() {
    if (run.sourceSuspendedAt == 0
        || run.switchedOverAt == 0
        || run.finalSyncedAt == 0
        || run.resumedAt == 0) {
      return "";
    }
    return String.format(
        "; paused %d ms: switchover until the destination was paused %d ms, final sync %d ms,"
            + " verification and resume %d ms",
        run.resumedAt - run.sourceSuspendedAt,
        run.switchedOverAt - run.sourceSuspendedAt,
        run.finalSyncedAt - run.switchedOverAt,
        run.resumedAt - run.finalSyncedAt);
  }

  private String overlayBreakdown() {
    if (run.sourceSuspendedAt == 0 || run.resumedAt == 0) {
      return "";
    }
    return String.format(
        "; paused %d ms (libvirt's own switchover; only the overlays were mirrored), overlays merged %d ms after the resume",
        run.resumedAt - run.sourceSuspendedAt, Math.max(0, run.mergedAt - run.resumedAt));
  }

  private String coldBreakdown() {
    return String.format(
        "; moved cold: down %d ms from the ACPI button until it booted on %s",
        run.resumedAt - run.sourceSuspendedAt, run.destination);
  }

  /** Cold strategy, when the destination did not say whether the guest runs there. */
  private String whereIsTheColdVm() {
    return run.vm
        + " is shut off on "
        + services.settings().host()
        + " with its files and is NOT restarted there: "
        + run.destination
        + " may have booted it; check "
        + run.destination
        + " before starting it anywhere (journal "
        + run.id
        + ")";
  }

  private String whereIsTheVm() {
    return run.vm
        + " may be paused on "
        + run.destination
        + " while the files on "
        + services.settings().host()
        + " are authoritative: check both hosts before acting (journal "
        + run.id
        + ")";
  }

  // ---------------------------------------------------------------- helpers

  private boolean overlay() {
    return run.options.strategy() == MigrationStrategy.OVERLAY;
  }

  private boolean cold() {
    return run.options.strategy() == MigrationStrategy.COLD;
  }

  private boolean wantsDelta(ManifestDisk d) {
    if (overlay() || cold() || !d.writable() || !"qcow2".equals(d.format())) {
      return false;
    }
    return run.options.finalSync() != FinalSyncMethod.RSYNC;
  }

  private String bitmapName() {
    return "ferry-" + run.id;
  }

  private String pathOf(String target) {
    return run.manifest.disks().stream()
        .filter(d -> d.target().equals(target))
        .map(ManifestDisk::path)
        .findFirst()
        .orElse(target);
  }

  private boolean pastDeadline() {
    return run.options.deadlineEpochMillis() > 0
        && System.currentTimeMillis() > run.options.deadlineEpochMillis();
  }

  private Duration copyTimeout(long bytes) {
    return services.settings().migration().timeouts().copy(bytes);
  }

  private void blocking(String step, Callable<?> work) {
    ctx.pipeToSelf(
        CompletableFuture.supplyAsync(
            () -> {
              try {
                return work.call();
              } catch (RuntimeException e) {
                throw e;
              } catch (Exception e) {
                throw new CompletionException(e);
              }
            },
            services.blocking()),
        (value, err) -> new StepDone(step, value, err));
  }

  private void subscribeToSourceEvents() {
    String vm = run.vm;
    ActorRef<Command> self = ctx.getSelf();
    try {
      lifecycleSubscription.set(
          services
              .hypervisor()
              .subscribe(
                  e -> {
                    if (e.domain().equals(vm)) {
                      self.tell(new SourceEvent(e));
                    }
                  }));
    } catch (RuntimeException e) {
      ctx.getLog()
          .warn(
              "{}: no lifecycle events ({}); the paused window will not be measured",
              vm,
              e.getMessage());
    }
  }

  private static String phaseName(MigrationPhase phase) {
    return phase.name().toLowerCase().replace('_', '-');
  }

  /** Closes the lifecycle subscription when the actor stops, whatever the state. */
  static <T> Behavior<T> withCleanup(
      Behavior<T> behavior, AtomicReference<AutoCloseable> subscription) {
    return MigrationBehaviors.closeOnStop(behavior, subscription);
  }
}
