package dev.ferry.node.scheduler;

import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.SchedulerProtocol;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Predicate;

/**
 * The hosts and links as the API shows them: per host its state, load and slots in use, per link
 * its capacity and what running migrations use of it. Pure: a function of the scheduler's state and
 * the inventories it holds.
 */
final class HostsView {
  private HostsView() {}

  static SchedulerProtocol.HostsReply of(
      SchedulerState s,
      Map<String, HostLoads.Known> known,
      HostLoads loads,
      Predicate<String> reachable,
      SchedulerSettings settings,
      long now) {
    List<Job> running = s.running();
    List<SchedulerProtocol.HostView> hosts = new ArrayList<>();
    for (Map.Entry<String, HostLoads.Known> e : known.entrySet()) {
      String h = e.getKey();
      HostInventory inv = e.getValue().inventory();
      boolean up = reachable.test(h);
      String state = up ? s.hostState(h) : "unreachable";
      hosts.add(
          new SchedulerProtocol.HostView(
              h,
              state,
              up,
              inv.cpus(),
              loads.load(h).map(HostLoads.Load::vcpus).orElse(0),
              inv.memoryBytes(),
              loads.load(h).map(HostLoads.Load::freeMemory).orElse(inv.freeMemoryBytes()),
              inv.datastoreBytes(),
              inv.datastoreFreeBytes(),
              inv.vms().size(),
              (int) running.stream().filter(j -> j.source().equals(h)).count(),
              settings.outboundPerHost(),
              (int) running.stream().filter(j -> j.destination().equals(h)).count(),
              settings.inboundPerHost(),
              now - e.getValue().receivedAtMillis()));
    }
    Map<String, Integer> streams = Admission.streamsInUse(running, settings);
    Map<String, Long> bandwidth = new TreeMap<>();
    Map<String, SchedulerSettings.LinkSpec> links = new TreeMap<>();
    for (String h : known.keySet()) {
      links.put("nic-out:" + h, settings.nicOf(h));
      links.put("nic-in:" + h, settings.nicOf(h));
    }
    settings.segments().forEach(seg -> links.put("segment:" + seg.name(), seg.link()));
    for (Job j : running) {
      for (Admission.Link l : Admission.path(j.source(), j.destination(), settings)) {
        bandwidth.merge(l.name(), j.bandwidth(), Long::sum);
      }
    }
    List<SchedulerProtocol.LinkView> linkViews = new ArrayList<>();
    links.forEach(
        (name, spec) ->
            linkViews.add(
                new SchedulerProtocol.LinkView(
                    name,
                    spec.capacity(),
                    spec.streams(),
                    streams.getOrDefault(name, 0),
                    bandwidth.getOrDefault(name, 0L))));
    return new SchedulerProtocol.HostsReply(
        hosts, linkViews, running.size(), settings.clusterCap(), s.queue().size());
  }
}
