package dev.ferry.api;

import dev.ferry.node.metrics.MetricsSource;
import dev.ferry.node.metrics.MetricsText;
import dev.ferry.protocol.SchedulerProtocol;
import dev.ferry.protocol.SchedulerProtocol.DrainView;
import dev.ferry.protocol.SchedulerProtocol.DrainVm;
import dev.ferry.protocol.SchedulerProtocol.DrainsReply;
import dev.ferry.protocol.SchedulerProtocol.HostView;
import dev.ferry.protocol.SchedulerProtocol.HostsReply;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.JobView;
import dev.ferry.protocol.SchedulerProtocol.JobsReply;
import dev.ferry.protocol.SchedulerProtocol.LinkView;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * The scheduler's view as Prometheus gauges: the queue, migrations in flight by phase, slots per
 * host and link, drain progress. They describe the whole cluster, so every node reports the same
 * values (aggregate with max(), or scrape one node).
 */
final class SchedulerMetrics {
  private SchedulerMetrics() {}

  /** Asks the scheduler (wherever its singleton runs) at every scrape. */
  static MetricsSource source(
      ActorSystem<?> system, ActorRef<SchedulerProtocol.Command> scheduler, Duration timeout) {
    return text -> {
      CompletionStage<HostsReply> hosts =
          AskPattern.ask(scheduler, SchedulerProtocol.GetHosts::new, timeout, system.scheduler());
      CompletionStage<JobsReply> jobs =
          AskPattern.ask(
              scheduler,
              r -> new SchedulerProtocol.ListJobs(true, 0, r),
              timeout,
              system.scheduler());
      CompletionStage<DrainsReply> drains =
          AskPattern.ask(scheduler, SchedulerProtocol.ListDrains::new, timeout, system.scheduler());
      return hosts
          .thenCompose(
              h ->
                  jobs.thenCombine(
                      drains,
                      (j, d) -> {
                        write(text, h, j, d);
                        return (Void) null;
                      }))
          .exceptionally(
              e -> {
                writeUnavailable(text);
                return null;
              });
    };
  }

  static void write(MetricsText text, HostsReply hosts, JobsReply jobs, DrainsReply drains) {
    text.family("ferry_scheduler_up", "gauge", "1 when the scheduler answered this scrape.")
        .sample("ferry_scheduler_up", 1);
    text.family("ferry_queue_depth", "gauge", "Migrations queued, waiting for admission.")
        .sample("ferry_queue_depth", hosts.queued());
    text.family("ferry_migrations_running", "gauge", "Migrations running in the cluster.")
        .sample("ferry_migrations_running", hosts.running());
    text.family("ferry_migrations_running_cap", "gauge", "The cluster-wide cap on migrations.")
        .sample("ferry_migrations_running_cap", hosts.clusterCap());

    Map<String, Integer> byPhase = new TreeMap<>();
    for (JobView j : jobs.jobs()) {
      if (!j.state().terminal()) {
        byPhase.merge(phase(j), 1, Integer::sum);
      }
    }
    text.family(
        "ferry_migrations", "gauge", "Migrations queued or running, by their current phase.");
    byPhase.forEach((p, n) -> text.sample("ferry_migrations", Map.of("phase", p), n));

    text.family(
        "ferry_host_slots_in_use", "gauge", "Migrations leaving (outbound) or entering a host.");
    text.family("ferry_host_slots", "gauge", "The per-host caps on migrations, by direction.");
    text.family(
        "ferry_host_state",
        "gauge",
        "1 for each host's state: active, draining, drained or unreachable.");
    for (HostView h : hosts.hosts()) {
      text.sample(
          "ferry_host_slots_in_use",
          Map.of("host", h.host(), "direction", "outbound"),
          h.outbound());
      text.sample(
          "ferry_host_slots_in_use", Map.of("host", h.host(), "direction", "inbound"), h.inbound());
      text.sample(
          "ferry_host_slots", Map.of("host", h.host(), "direction", "outbound"), h.outboundCap());
      text.sample(
          "ferry_host_slots", Map.of("host", h.host(), "direction", "inbound"), h.inboundCap());
      text.sample("ferry_host_state", Map.of("host", h.host(), "state", h.state()), 1);
    }

    text.family("ferry_link_streams_in_use", "gauge", "Migrations using a link now.");
    text.family("ferry_link_streams", "gauge", "Migrations a link may carry at once.");
    text.family(
        "ferry_link_bandwidth_in_use_bytes",
        "gauge",
        "Bandwidth granted to the migrations on a link, in bytes per second.");
    text.family("ferry_link_capacity_bytes", "gauge", "A link's capacity, in bytes per second.");
    for (LinkView l : hosts.links()) {
      Map<String, String> link = Map.of("link", l.name());
      text.sample("ferry_link_streams_in_use", link, l.streamsInUse());
      text.sample("ferry_link_streams", link, l.streams());
      text.sample("ferry_link_bandwidth_in_use_bytes", link, l.bandwidthInUse());
      text.sample("ferry_link_capacity_bytes", link, l.capacity());
    }

    text.family(
        "ferry_drain_vms",
        "gauge",
        "VMs of each drain the scheduler remembers, by status (waiting, queued, running, moved,"
            + " failed, cancelled, given-up).");
    text.family("ferry_drain_running", "gauge", "1 while a drain is still running.");
    for (DrainView d : drains.drains()) {
      Map<String, Integer> byStatus = new TreeMap<>();
      for (DrainVm vm : d.vms()) {
        byStatus.merge(vm.status(), 1, Integer::sum);
      }
      byStatus.forEach(
          (s, n) ->
              text.sample(
                  "ferry_drain_vms",
                  Map.of("drain", d.id(), "host", d.request().host(), "status", s),
                  n));
      text.sample(
          "ferry_drain_running",
          Map.of("drain", d.id(), "host", d.request().host()),
          "running".equals(d.state()) ? 1 : 0);
    }
  }

  /** Written when the scheduler did not answer: the gauges above would be guesses. */
  static void writeUnavailable(MetricsText text) {
    text.family("ferry_scheduler_up", "gauge", "1 when the scheduler answered this scrape.")
        .sample("ferry_scheduler_up", 0);
  }

  private static String phase(JobView j) {
    if (j.state() == JobState.QUEUED) {
      return "queued";
    }
    return j.progress() == null
        ? "starting"
        : j.progress().phase().name().toLowerCase().replace('_', '-');
  }
}
