package dev.ferry.node.scheduler;

import dev.ferry.node.validation.InvalidInputException;
import dev.ferry.node.validation.Names;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.SchedulerProtocol;
import dev.ferry.protocol.SchedulerProtocol.DrainRequest;
import dev.ferry.protocol.SchedulerProtocol.DrainVm;
import dev.ferry.protocol.SchedulerProtocol.ErrorKind;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What drains do, as pure functions from the scheduler's state to the events that record it: the
 * scheduler persists them, and tests call them without actors. A drain queues one job per VM of its
 * host at drain priority; each job's end updates the VM's line in the drain's report, queues
 * another live attempt while attempts are left, or (with cold fallback) one cold move of a VM whose
 * live attempts all left it running on the host; the drain ends once every line is settled, when
 * its deadline passes, or when it is cancelled.
 */
final class Drains {
  private Drains() {}

  /**
   * Why a drain is refused: a host name that is not one, a deadline already passed, a drain of the
   * host already running, a host no agent reported from or whose agent is unreachable.
   */
  static Optional<SchedulerProtocol.DrainReply> refusal(
      SchedulerState s, SchedulerProtocol.DrainRequest r, KnownHosts known, long now) {
    try {
      Names.hostName(r.host());
    } catch (InvalidInputException e) {
      return Optional.of(SchedulerProtocol.DrainReply.error(ErrorKind.INVALID, e.getMessage()));
    }
    if (r.deadlineEpochMillis() != 0 && r.deadlineEpochMillis() <= now) {
      return Optional.of(
          SchedulerProtocol.DrainReply.error(ErrorKind.INVALID, "the deadline is in the past"));
    }
    Optional<SchedulerState.Drain> running = s.runningDrainOf(r.host());
    if (running.isPresent()) {
      return Optional.of(
          SchedulerProtocol.DrainReply.error(
              ErrorKind.CONFLICT, r.host() + " is already draining: " + running.get().id));
    }
    if (known.get(r.host()).isEmpty()) {
      return Optional.of(
          SchedulerProtocol.DrainReply.error(ErrorKind.INVALID, "unknown host " + r.host()));
    }
    if (!known.reachable(r.host())) {
      return Optional.of(
          SchedulerProtocol.DrainReply.error(
              ErrorKind.UNAVAILABLE, "the agent of " + r.host() + " is unreachable"));
    }
    return Optional.empty();
  }

  /**
   * A drain of {@code request.host()} starts: one job per VM in its inventory, except VMs that a
   * job already moves (their line says so).
   */
  static List<SchedulerEvent> started(
      SchedulerState s, String id, DrainRequest request, HostInventory inventory, long now) {
    long seq = s.nextSeq();
    List<SchedulerEvent> events = new ArrayList<>();
    events.add(new SchedulerEvent.DrainStarted(id, request, seq, now));
    long next = seq + 1;
    MigrationOptions options =
        request.options() == null ? MigrationOptions.defaults() : request.options();
    if (request.deadlineEpochMillis() > 0 && options.deadlineEpochMillis() == 0) {
      options = options.withDeadline(request.deadlineEpochMillis());
    }
    for (HostInventory.VmInfo vm : inventory.vms()) {
      Optional<Job> existing = s.activeJobOf(vm.name());
      if (existing.isPresent()) {
        Job e = existing.get();
        events.add(
            new SchedulerEvent.DrainVmUpdated(
                id,
                new DrainVm(
                    vm.name(),
                    e.state() == JobState.RUNNING ? "running" : "queued",
                    e.destination(),
                    e.id(),
                    1,
                    "already being migrated by " + e.id())));
        continue;
      }
      Job job =
          Jobs.create(
              new MigrationRequest(
                  vm.name(), request.host(), "", options, Priority.DRAIN, "drain:" + id),
              "",
              next++,
              seq,
              vm,
              now);
      events.add(new SchedulerEvent.JobSubmitted(job));
      events.add(
          new SchedulerEvent.DrainVmUpdated(
              id, new DrainVm(vm.name(), "queued", "", job.id(), 1, "queued")));
    }
    if (inventory.vms().isEmpty()) {
      events.add(new SchedulerEvent.DrainEnded(id, "completed", "no VMs were on the host", now));
    }
    return events;
  }

  /** The drain lines of jobs admission just started: running, and towards which host. */
  static List<SchedulerEvent> jobsStarted(SchedulerState s, List<Admission.Start> starts) {
    List<SchedulerEvent> events = new ArrayList<>();
    for (Admission.Start st : starts) {
      for (SchedulerState.Drain drain : s.drains()) {
        DrainVm line = lineOf(drain, st.jobId());
        if (line != null) {
          events.add(
              new SchedulerEvent.DrainVmUpdated(
                  drain.id,
                  new DrainVm(
                      line.vm(),
                      "running",
                      st.destination(),
                      st.jobId(),
                      line.attempts(),
                      (cold(s, st.jobId()) ? "moving cold to " : "migrating to ")
                          + st.destination())));
        }
      }
    }
    return events;
  }

  /**
   * What a job's end means for the drains that wait on it: its line in the report, a new attempt if
   * attempts are left, and the drain's end once every line is settled.
   */
  static List<SchedulerEvent> afterJobEnded(
      SchedulerState s,
      Job job,
      JobState state,
      MigrationResult result,
      String message,
      long now,
      int attempts) {
    List<SchedulerEvent> events = new ArrayList<>();
    for (SchedulerState.Drain d : s.drains()) {
      DrainVm line = lineOf(d, job.id());
      if (line == null) {
        continue;
      }
      Map<String, DrainVm> after = new LinkedHashMap<>(d.vms);
      DrainVm updated;
      if (state == JobState.COMPLETED) {
        String landed = job.ended(state, result, message, now).landedOn();
        updated =
            new DrainVm(
                line.vm(), "moved", landed, job.id(), line.attempts(), "running on " + landed);
      } else if (state == JobState.CANCELLED && !d.running()) {
        updated = new DrainVm(line.vm(), "cancelled", "", job.id(), line.attempts(), message);
      } else if (state == JobState.CANCELLED && line.status().equals("given-up")) {
        updated = line;
      } else if (d.running() && line.attempts() < attempts && state != JobState.CANCELLED) {
        Job retry = next(d, job, job.request().options(), s.nextSeq() + events.size(), now);
        events.add(new SchedulerEvent.JobSubmitted(retry));
        updated =
            new DrainVm(
                line.vm(),
                "queued",
                "",
                retry.id(),
                line.attempts() + 1,
                "attempt " + line.attempts() + " " + state.name().toLowerCase() + ": " + message);
      } else if (coldFallback(d, job, state, result)) {
        Job cold =
            next(
                d,
                job,
                job.request().options().withStrategy(MigrationStrategy.COLD),
                s.nextSeq() + events.size(),
                now);
        events.add(new SchedulerEvent.JobSubmitted(cold));
        updated =
            new DrainVm(
                line.vm(),
                "queued",
                "",
                cold.id(),
                line.attempts() + 1,
                "live attempts failed (last: "
                    + message
                    + "); moving it cold: shut down, copy, boot on the destination");
      } else {
        updated =
            new DrainVm(
                line.vm(),
                state == JobState.CANCELLED ? "cancelled" : "failed",
                "",
                job.id(),
                line.attempts(),
                state.name().toLowerCase() + ": " + message);
      }
      events.add(new SchedulerEvent.DrainVmUpdated(d.id, updated));
      after.put(updated.vm(), updated);
      if (d.running() && after.values().stream().allMatch(Drains::settled)) {
        long moved = after.values().stream().filter(v -> v.status().equals("moved")).count();
        boolean all = moved == after.size();
        events.add(
            new SchedulerEvent.DrainEnded(
                d.id,
                all ? "completed" : "partial",
                moved + " of " + after.size() + " VMs moved",
                now));
      }
    }
    return events;
  }

  /** Drains whose deadline passed: their queued moves are given up, the running ones go on. */
  static List<SchedulerEvent> deadlinesPassed(SchedulerState s, long now) {
    List<SchedulerEvent> events = new ArrayList<>();
    for (SchedulerState.Drain d : s.drains()) {
      long deadline = d.request.deadlineEpochMillis();
      if (d.running() && deadline > 0 && now >= deadline) {
        events.addAll(stopQueued(s, d, "given-up", "the drain's deadline passed", now));
        events.add(
            new SchedulerEvent.DrainEnded(
                d.id, "partial", "the deadline passed; running moves finish or roll back", now));
      }
    }
    return events;
  }

  /** A running drain is cancelled: its queued moves end, its running ones finish or roll back. */
  static List<SchedulerEvent> cancelled(SchedulerState s, SchedulerState.Drain d, long now) {
    List<SchedulerEvent> events =
        new ArrayList<>(stopQueued(s, d, "cancelled", "the drain was cancelled", now));
    long running = d.vms.values().stream().filter(v -> v.status().equals("running")).count();
    events.add(
        new SchedulerEvent.DrainEnded(
            d.id,
            "cancelled",
            "cancelled; " + running + " running moves finish or roll back",
            now));
    return events;
  }

  /** Ends a drain's queued jobs; its running ones finish or roll back on their own. */
  private static List<SchedulerEvent> stopQueued(
      SchedulerState s, SchedulerState.Drain d, String status, String why, long now) {
    List<SchedulerEvent> events = new ArrayList<>();
    for (DrainVm line : d.vms.values()) {
      Optional<Job> j = line.jobId() == null ? Optional.empty() : s.job(line.jobId());
      if (j.isPresent() && j.get().state() == JobState.QUEUED) {
        events.add(new SchedulerEvent.JobEnded(j.get().id(), JobState.CANCELLED, null, why, now));
        events.add(
            new SchedulerEvent.DrainVmUpdated(
                d.id, new DrainVm(line.vm(), status, "", line.jobId(), line.attempts(), why)));
      }
    }
    return events;
  }

  private static boolean cold(SchedulerState s, String jobId) {
    return s.job(jobId)
        .map(j -> j.request().options().strategy() == MigrationStrategy.COLD)
        .orElse(false);
  }

  /** The next move of a drain's VM, queued behind the drain's earlier ones. */
  private static Job next(
      SchedulerState.Drain d, Job previous, MigrationOptions options, long seq, long now) {
    return Jobs.create(
        new MigrationRequest(
            previous.vm(), d.request.host(), "", options, Priority.DRAIN, "drain:" + d.id),
        "",
        seq,
        d.seq,
        new HostInventory.VmInfo(
            previous.vm(), previous.vcpus(), previous.memoryBytes(), previous.diskBytes(), true),
        now);
  }

  /**
   * A drain with cold fallback moves a VM cold once its live attempts are used up, but only if the
   * last one left it running on the draining host (rolled back): a VM whose whereabouts are in
   * doubt is not touched again.
   */
  private static boolean coldFallback(
      SchedulerState.Drain d, Job job, JobState state, MigrationResult result) {
    return d.running()
        && d.request.coldFallback()
        && (state == JobState.ROLLED_BACK
            || state == JobState.MIGRATED_BACK
            || state == JobState.REJECTED)
        && job.request().options().strategy() != MigrationStrategy.COLD
        && result != null
        && d.request.host().equals(result.runningOn());
  }

  private static DrainVm lineOf(SchedulerState.Drain d, String jobId) {
    for (DrainVm vm : d.vms.values()) {
      if (jobId.equals(vm.jobId())) {
        return vm;
      }
    }
    return null;
  }

  private static boolean settled(DrainVm vm) {
    return switch (vm.status()) {
      case "moved", "failed", "cancelled", "given-up" -> true;
      default -> false;
    };
  }
}
