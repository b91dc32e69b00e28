package dev.ferry.node.scheduler;

import dev.ferry.node.scheduler.SchedulerSettings.LinkSpec;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Which queued migrations may start now. Pure: the same state, hosts and settings always give the
 * same answer, so it is tested without actors.
 *
 * <p>Every cap holds at once: outbound per source, inbound per destination, the cluster cap, and
 * the stream limit of every link on the path (the source's NIC out, the destination's NIC in, each
 * named segment crossed). Running jobs hold their slots until they end; nothing is released by a
 * timer. Queued jobs are looked at in queue order; one that cannot start does not hold back those
 * behind it that can (a full host must not stall the rest of the cluster).
 */
final class Admission {
  private Admission() {}

  /** Start {@code jobId} towards {@code destination} with this bandwidth (bytes/s). */
  record Start(String jobId, String destination, long bandwidth) {}

  /**
   * @param waiting for each queued job that cannot start, why
   */
  record Decision(List<Start> starts, Map<String, String> waiting) {}

  /** A link a migration uses, with its capacity. */
  record Link(String name, LinkSpec spec) {}

  /** The links a migration from {@code source} to {@code destination} uses. */
  static List<Link> path(String source, String destination, SchedulerSettings s) {
    List<Link> links = new ArrayList<>();
    links.add(new Link("nic-out:" + source, s.nicOf(source)));
    links.add(new Link("nic-in:" + destination, s.nicOf(destination)));
    for (SchedulerSettings.Segment seg : s.segments()) {
      if (seg.crossedBy(source, destination)) {
        links.add(new Link("segment:" + seg.name(), seg.link()));
      }
    }
    return links;
  }

  /**
   * The bandwidth a migration gets: the smallest fair share along its path, and no more than it
   * asked for.
   */
  static long bandwidth(List<Link> path, long asked) {
    long share = path.stream().mapToLong(l -> l.spec().share()).min().orElse(0);
    return asked > 0 ? Math.min(asked, share) : share;
  }

  /** How many running migrations use each link. */
  static Map<String, Integer> streamsInUse(List<Job> running, SchedulerSettings s) {
    Map<String, Integer> used = new HashMap<>();
    for (Job j : running) {
      for (Link l : path(j.source(), j.destination(), s)) {
        used.merge(l.name(), 1, Integer::sum);
      }
    }
    return used;
  }

  /**
   * @param hostState a host's state: only {@code active} hosts receive VMs chosen by placement (an
   *     explicit destination names a host the caller chose, unless it is draining or drained)
   */
  static Decision decide(
      SchedulerState state,
      HostLoads loads,
      Predicate<String> reachable,
      java.util.function.Function<String, String> hostState,
      SchedulerSettings s) {
    List<Job> running = state.running();
    Map<String, Integer> outbound = new HashMap<>();
    Map<String, Integer> inbound = new HashMap<>();
    for (Job j : running) {
      outbound.merge(j.source(), 1, Integer::sum);
      inbound.merge(j.destination(), 1, Integer::sum);
    }
    Map<String, Integer> streams = streamsInUse(running, s);
    int total = running.size();
    List<Start> starts = new ArrayList<>();
    Map<String, String> waiting = new LinkedHashMap<>();
    String clusterFull = "the cluster cap (" + s.clusterCap() + " at once) is reached";
    for (Job job : state.queue()) {
      if (total >= s.clusterCap()) {
        waiting.put(job.id(), clusterFull);
        continue;
      }
      String src = job.source();
      if (!reachable.test(src)) {
        waiting.put(job.id(), "the agent of " + src + " is unreachable");
        continue;
      }
      if (outbound.getOrDefault(src, 0) >= s.outboundPerHost()) {
        waiting.put(
            job.id(),
            "the outbound cap of " + src + " (" + s.outboundPerHost() + " at once) is reached");
        continue;
      }
      HostLoads.Vm vm = HostLoads.vmOf(job);
      List<String> candidates;
      if (job.destination().isEmpty()) {
        candidates =
            loads.candidates(
                vm, src, h -> reachable.test(h) && hostState.apply(h).equals("active"), s);
        if (candidates.isEmpty()) {
          waiting.put(job.id(), "no host has room for " + job.vm() + whyNone(loads, vm, src, s));
          continue;
        }
      } else {
        String dst = job.destination();
        if (!reachable.test(dst)) {
          waiting.put(job.id(), "the agent of " + dst + " is unreachable");
          continue;
        }
        if (!hostState.apply(dst).equals("active")) {
          waiting.put(job.id(), dst + " is " + hostState.apply(dst));
          continue;
        }
        candidates = List.of(dst);
      }
      String chosen = null;
      String why = null;
      for (String dst : candidates) {
        if (inbound.getOrDefault(dst, 0) >= s.inboundPerHost()) {
          why = "the inbound cap of " + dst + " (" + s.inboundPerHost() + " at once) is reached";
          continue;
        }
        String full = fullLink(path(src, dst, s), streams);
        if (full != null) {
          why = "link " + full + " has no free stream";
          continue;
        }
        chosen = dst;
        break;
      }
      if (chosen == null) {
        waiting.put(job.id(), why);
        continue;
      }
      List<Link> path = path(src, chosen, s);
      long bw = bandwidth(path, job.request().options().bandwidthBytesPerSecond());
      starts.add(new Start(job.id(), chosen, bw));
      total++;
      outbound.merge(src, 1, Integer::sum);
      inbound.merge(chosen, 1, Integer::sum);
      path.forEach(l -> streams.merge(l.name(), 1, Integer::sum));
      loads.reserve(vm, chosen);
    }
    return new Decision(starts, waiting);
  }

  private static String fullLink(List<Link> path, Map<String, Integer> streams) {
    for (Link l : path) {
      if (streams.getOrDefault(l.name(), 0) >= l.spec().streams()) {
        return l.name();
      }
    }
    return null;
  }

  private static String whyNone(HostLoads loads, HostLoads.Vm vm, String src, SchedulerSettings s) {
    List<String> reasons = new ArrayList<>();
    for (HostLoads.Load l : loads.all()) {
      if (!l.host.equals(src)) {
        loads.whyNotFits(l.host, vm, s).ifPresent(reasons::add);
      }
    }
    return reasons.isEmpty() ? " (no other active host)" : " (" + String.join(", ", reasons) + ")";
  }
}
