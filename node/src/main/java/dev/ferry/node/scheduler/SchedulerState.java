package dev.ferry.node.scheduler;

import dev.ferry.protocol.CborSerializable;
import dev.ferry.protocol.SchedulerProtocol.DrainRequest;
import dev.ferry.protocol.SchedulerProtocol.DrainView;
import dev.ferry.protocol.SchedulerProtocol.DrainVm;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Everything the scheduler remembers. Changed only by {@link #apply(SchedulerEvent)}, so replaying
 * the journal rebuilds it exactly; commands read it and decide which events to persist.
 */
final class SchedulerState {

  /** A drain as journaled, with its per-VM report. */
  static final class Drain {
    final String id;
    final DrainRequest request;
    final long seq;
    final long startedAtMillis;
    final LinkedHashMap<String, DrainVm> vms = new LinkedHashMap<>();
    String state = "running";
    long finishedAtMillis;
    String message = "";

    Drain(String id, DrainRequest request, long seq, long startedAtMillis) {
      this.id = id;
      this.request = request;
      this.seq = seq;
      this.startedAtMillis = startedAtMillis;
    }

    boolean running() {
      return state.equals("running");
    }

    DrainView view() {
      return new DrainView(
          id,
          request,
          state,
          startedAtMillis,
          finishedAtMillis,
          new ArrayList<>(vms.values()),
          message);
    }
  }

  /** The state in a form the snapshot store can serialize. */
  record Snapshot(
      List<Job> active,
      List<Job> finished,
      Map<String, String> idempotency,
      List<DrainSnapshot> drains,
      Map<String, String> hostStates,
      Map<String, Long> movedAt,
      long nextSeq)
      implements CborSerializable {}

  record DrainSnapshot(DrainView view, long seq) implements CborSerializable {}

  private final int history;
  private final Map<String, Job> active = new HashMap<>();
  private final TreeSet<Job> queue = new TreeSet<>(Job.QUEUE_ORDER);
  private final LinkedHashMap<String, Job> finished = new LinkedHashMap<>();
  private final Map<String, String> activeByVm = new HashMap<>();
  private final Map<String, String> idempotency = new HashMap<>();
  private final LinkedHashMap<String, Drain> drains = new LinkedHashMap<>();
  private final Map<String, String> hostStates = new TreeMap<>();
  private final Map<String, Long> movedAt = new HashMap<>();
  private long nextSeq = 1;

  SchedulerState(int history) {
    this.history = history;
  }

  void apply(SchedulerEvent event) {
    if (event instanceof SchedulerEvent.JobSubmitted e) {
      Job job = e.job();
      active.put(job.id(), job);
      queue.add(job);
      activeByVm.put(job.vm(), job.id());
      if (job.idempotencyKey() != null && !job.idempotencyKey().isEmpty()) {
        idempotency.put(job.idempotencyKey(), job.id());
      }
      nextSeq = Math.max(nextSeq, job.seq() + 1);
    } else if (event instanceof SchedulerEvent.JobStarted e) {
      Job job = active.get(e.id());
      if (job != null && job.state() == JobState.QUEUED) {
        queue.remove(job);
        active.put(job.id(), job.started(e.destination(), e.bandwidth(), e.atMillis()));
      }
    } else if (event instanceof SchedulerEvent.JobEnded e) {
      Job job = active.remove(e.id());
      if (job != null) {
        queue.remove(job);
        activeByVm.remove(job.vm(), job.id());
        finished.put(job.id(), job.ended(e.state(), e.result(), e.message(), e.atMillis()));
        if (e.state() == JobState.COMPLETED) {
          movedAt.put(job.vm(), e.atMillis());
        }
        trimHistory();
      }
    } else if (event instanceof SchedulerEvent.DrainStarted e) {
      drains.put(e.id(), new Drain(e.id(), e.request(), e.seq(), e.atMillis()));
      hostStates.put(e.request().host(), "draining");
      nextSeq = Math.max(nextSeq, e.seq() + 1);
    } else if (event instanceof SchedulerEvent.DrainVmUpdated e) {
      Drain d = drains.get(e.drainId());
      if (d != null) {
        d.vms.put(e.vm().vm(), e.vm());
      }
    } else if (event instanceof SchedulerEvent.DrainEnded e) {
      Drain d = drains.get(e.id());
      if (d != null) {
        d.state = e.state();
        d.message = e.message();
        d.finishedAtMillis = e.atMillis();
        // a cancelled drain gives the host back; an ended one keeps it out of placement until
        // an operator enables it again
        if (e.state().equals("cancelled")) {
          hostStates.remove(d.request.host());
        } else {
          hostStates.put(d.request.host(), "drained");
        }
      }
    } else if (event instanceof SchedulerEvent.HostEnabled e) {
      hostStates.remove(e.host());
    }
  }

  private void trimHistory() {
    Iterator<String> it = finished.keySet().iterator();
    while (finished.size() > history && it.hasNext()) {
      String id = it.next();
      Job old = finished.get(id);
      if (old.idempotencyKey() != null) {
        idempotency.remove(old.idempotencyKey(), id);
      }
      it.remove();
    }
    Iterator<Drain> drainsIt = drains.values().iterator();
    while (drains.size() > history && drainsIt.hasNext()) {
      if (!drainsIt.next().running()) {
        drainsIt.remove();
      }
    }
  }

  // ---- reads

  long nextSeq() {
    return nextSeq;
  }

  Optional<Job> job(String id) {
    Job j = active.get(id);
    return Optional.ofNullable(j != null ? j : finished.get(id));
  }

  Optional<Job> byIdempotencyKey(String key) {
    String id = idempotency.get(key);
    return id == null ? Optional.empty() : job(id);
  }

  Optional<Job> activeJobOf(String vm) {
    String id = activeByVm.get(vm);
    return id == null ? Optional.empty() : Optional.ofNullable(active.get(id));
  }

  /** Queued jobs in the order they may start. */
  Collection<Job> queue() {
    return queue;
  }

  List<Job> running() {
    return active.values().stream().filter(j -> j.state() == JobState.RUNNING).toList();
  }

  Collection<Job> active() {
    return active.values();
  }

  /** Finished jobs, oldest first. */
  Collection<Job> finished() {
    return finished.values();
  }

  Optional<Drain> drain(String id) {
    return Optional.ofNullable(drains.get(id));
  }

  Collection<Drain> drains() {
    return drains.values();
  }

  Optional<Drain> runningDrainOf(String host) {
    return drains.values().stream()
        .filter(d -> d.running() && d.request.host().equals(host))
        .findFirst();
  }

  /** {@code active}, {@code draining} or {@code drained}. */
  String hostState(String host) {
    return hostStates.getOrDefault(host, "active");
  }

  /** When the VM last arrived somewhere, for the rebalancing cooldown. */
  Optional<Long> movedAt(String vm) {
    return Optional.ofNullable(movedAt.get(vm));
  }

  // ---- snapshots

  Snapshot snapshot() {
    return new Snapshot(
        new ArrayList<>(active.values()),
        new ArrayList<>(finished.values()),
        new HashMap<>(idempotency),
        drains.values().stream().map(d -> new DrainSnapshot(d.view(), d.seq)).toList(),
        new TreeMap<>(hostStates),
        new HashMap<>(movedAt),
        nextSeq);
  }

  static SchedulerState of(Snapshot s, int history) {
    SchedulerState state = new SchedulerState(history);
    for (Job j : s.active()) {
      state.active.put(j.id(), j);
      if (j.state() == JobState.QUEUED) {
        state.queue.add(j);
      }
      state.activeByVm.put(j.vm(), j.id());
    }
    for (Job j : s.finished()) {
      state.finished.put(j.id(), j);
    }
    state.idempotency.putAll(s.idempotency());
    for (DrainSnapshot ds : s.drains()) {
      DrainView v = ds.view();
      Drain d = new Drain(v.id(), v.request(), ds.seq(), v.startedAtMillis());
      d.state = v.state();
      d.finishedAtMillis = v.finishedAtMillis();
      d.message = v.message();
      for (DrainVm vm : v.vms()) {
        d.vms.put(vm.vm(), vm);
      }
      state.drains.put(d.id, d);
    }
    state.hostStates.putAll(s.hostStates());
    state.movedAt.putAll(s.movedAt());
    state.nextSeq = s.nextSeq();
    return state;
  }
}
