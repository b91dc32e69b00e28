package dev.ferry.node.scheduler;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.typesafe.config.ConfigFactory;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * Scheduler benchmark (not a test): {@code bench/scheduler-bench [--out FILE.json]}.
 *
 * <ol>
 *   <li>Drain makespan: one host with 24 VMs of mixed sizes drained onto five hosts, simulated in
 *       virtual time with the real {@link Admission} deciding every start (caps 2/2/8, NICs of 1.25
 *       GB/s with two streams), next to two baselines measured in the same run on the same VMs:
 *       <em>waves</em> (start {@code cap} migrations, wait until all of them end: the batch barrier
 *       of oVirt and OpenNebula's host flush) and <em>timer</em> (a slot is freed after a fixed
 *       time whether or not the copy ended, as KubeVirt's and Nova's completion timeouts do, so
 *       copies pile up on the NIC and share it).
 *   <li>Admission latency: {@link Admission#decide} over 1000 queued jobs on 100 hosts.
 * </ol>
 */
public final class SchedulerBench {
  private static final long GIB = 1L << 30;
  private static final double OVERHEAD_S = 10; // preflight, switchover, verification per VM

  private SchedulerBench() {}

  record Vm(String name, long bytes) {}

  record DrainResult(
      String policy, double makespanS, int peakStreamsOnSourceNic, double meanStreamsOnSourceNic) {}

  public static void main(String[] args) throws Exception {
    Path out = Path.of("bench/results/scheduler-bench.json");
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--out")) {
        out = Path.of(args[++i]);
      }
    }
    SchedulerSettings s = SchedulerSettings.from(ConfigFactory.load()).withCaps(2, 2, 8);
    List<Vm> vms = vms(24, 42);
    long nic = s.nicOf("src").capacity();

    List<DrainResult> drains = new ArrayList<>();
    drains.add(ferry(vms, s));
    drains.add(waves(vms, s.outboundPerHost(), nic));
    // a long timer leaves the NIC idle after short copies; a short one piles copies onto it
    drains.add(timer(vms, s.outboundPerHost(), nic, 120));
    drains.add(timer(vms, s.outboundPerHost(), nic, 30));
    double lowerBound = vms.stream().mapToLong(Vm::bytes).sum() / (double) nic;

    Map<String, Object> latency = admissionLatency(s);
    Map<String, Object> plan = planTime(s);
    Map<String, Object> report = new LinkedHashMap<>();
    report.put("drain_vms", vms.size());
    report.put("drain_total_bytes", vms.stream().mapToLong(Vm::bytes).sum());
    report.put("nic_bytes_per_s", nic);
    report.put("transfer_lower_bound_s", round(lowerBound));
    report.put("drain", drains);
    double ferry = drains.get(0).makespanS();
    report.put("makespan_ratio_waves_over_ferry", round(drains.get(1).makespanS() / ferry));
    report.put("makespan_ratio_timer120_over_ferry", round(drains.get(2).makespanS() / ferry));
    report.put("makespan_ratio_timer30_over_ferry", round(drains.get(3).makespanS() / ferry));
    report.put("makespan_ratio_ferry_over_lower_bound", round(ferry / lowerBound));
    report.put("drain_makespan_ratio", round(ferry / lowerBound));
    report.put("admission_p50_ms", latency.get("admission_p50_ms"));
    report.put("admission_p99_ms", latency.get("admission_p99_ms"));
    report.put("plan_ms", plan.get("plan_ms"));
    report.put("admission", latency);
    report.put("plan", plan);
    Files.createDirectories(out.toAbsolutePath().getParent());
    new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(out.toFile(), report);
    Files.writeString(Path.of(out.toString().replaceAll("\\.json$", "") + ".md"), markdown(report));
    System.out.println(
        Files.readString(Path.of(out.toString().replaceAll("\\.json$", "") + ".md")));
  }

  static List<Vm> vms(int n, long seed) {
    Random r = new Random(seed);
    List<Vm> vms = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      // most VMs are small; a few carry big disks (the long tail a drain waits for)
      long disk = r.nextDouble() < 0.2 ? (40 + r.nextInt(60)) * GIB : (2 + r.nextInt(10)) * GIB;
      long mem = (1 + r.nextInt(8)) * GIB;
      vms.add(new Vm("vm-" + i, disk + mem));
    }
    return vms;
  }

  /** Our scheduler: Admission decides every start; a slot is refilled the moment a copy ends. */
  static DrainResult ferry(List<Vm> vms, SchedulerSettings s) {
    SchedulerState state = new SchedulerState(10_000);
    Map<String, HostLoads.Known> inv = new TreeMap<>();
    List<HostInventory.VmInfo> onSource = new ArrayList<>();
    for (Vm vm : vms) {
      onSource.add(new HostInventory.VmInfo(vm.name(), 1, GIB, vm.bytes() - GIB, true));
    }
    inv.put("src", known("src", onSource));
    for (int i = 1; i <= 5; i++) {
      inv.put("dst" + i, known("dst" + i, List.of()));
    }
    long seq = 1;
    for (Vm vm : vms) {
      state.apply(
          new SchedulerEvent.JobSubmitted(
              new Job(
                  vm.name(),
                  new MigrationRequest(
                      vm.name(), "src", "", MigrationOptions.defaults(), Priority.DRAIN, "drain"),
                  "",
                  seq++,
                  0,
                  vm.bytes() - GIB,
                  GIB,
                  1,
                  JobState.QUEUED,
                  0,
                  0,
                  0,
                  0,
                  null,
                  "")));
    }
    double now = 0;
    Map<String, Double> endsAt = new TreeMap<>();
    Sampler sampler = new Sampler();
    while (!state.queue().isEmpty() || !endsAt.isEmpty()) {
      Admission.Decision d =
          Admission.decide(
              state, HostLoads.of(inv, state.running(), List.of()), h -> true, h -> "active", s);
      for (Admission.Start st : d.starts()) {
        Job j = state.job(st.jobId()).orElseThrow();
        state.apply(
            new SchedulerEvent.JobStarted(
                st.jobId(), st.destination(), st.bandwidth(), (long) (now * 1000)));
        endsAt.put(j.id(), now + OVERHEAD_S + j.bytes() / (double) st.bandwidth());
      }
      sampler.note(now, endsAt.size());
      String next =
          endsAt.entrySet().stream().min(Map.Entry.comparingByValue()).orElseThrow().getKey();
      now = endsAt.remove(next);
      state.apply(
          new SchedulerEvent.JobEnded(next, JobState.COMPLETED, null, "", (long) (now * 1000)));
    }
    sampler.note(now, 0);
    return new DrainResult("ferry", round(now), sampler.peak, round(sampler.mean(now)));
  }

  /**
   * Batch barrier: {@code cap} at a time, FIFO; the next wave waits for the slowest of this one.
   */
  static DrainResult waves(List<Vm> vms, int cap, long nic) {
    double now = 0;
    Sampler sampler = new Sampler();
    for (int i = 0; i < vms.size(); i += cap) {
      List<Vm> wave = vms.subList(i, Math.min(vms.size(), i + cap));
      double share = nic / (double) wave.size();
      sampler.note(now, wave.size());
      double longest =
          wave.stream().mapToDouble(v -> OVERHEAD_S + v.bytes() / share).max().orElse(0);
      now += longest;
    }
    sampler.note(now, 0);
    return new DrainResult("waves", round(now), sampler.peak, round(sampler.mean(now)));
  }

  /**
   * Slots freed by a timer: a new migration starts every {@code timeout / cap} seconds whatever
   * runs; every copy on the NIC shares it equally (processor sharing), so they all slow down.
   */
  static DrainResult timer(List<Vm> vms, int cap, long nic, double timeoutS) {
    double interval = timeoutS / cap;
    double now = 0;
    Map<Integer, Double> left = new TreeMap<>(); // bytes left per running copy
    Map<Integer, Double> overheadLeft = new TreeMap<>();
    int next = 0;
    double nextStart = 0;
    Sampler sampler = new Sampler();
    double dt = 0.5;
    while (next < vms.size() || !left.isEmpty()) {
      while (next < vms.size() && now >= nextStart) {
        left.put(next, (double) vms.get(next).bytes());
        overheadLeft.put(next, OVERHEAD_S);
        next++;
        nextStart = now + (left.size() < cap ? 0 : interval);
      }
      sampler.note(now, left.size());
      long copying = left.keySet().stream().filter(k -> left.get(k) > 0).count();
      double share = copying == 0 ? 0 : nic / (double) copying;
      for (Integer k : new ArrayList<>(left.keySet())) {
        if (left.get(k) > 0) {
          left.put(k, left.get(k) - share * dt);
        } else {
          overheadLeft.put(k, overheadLeft.get(k) - dt);
          if (overheadLeft.get(k) <= 0) {
            left.remove(k);
            overheadLeft.remove(k);
          }
        }
      }
      now += dt;
    }
    sampler.note(now, 0);
    return new DrainResult(
        "timer-" + (int) timeoutS + "s", round(now), sampler.peak, round(sampler.mean(now)));
  }

  /** Time-weighted number of migrations on the source NIC. */
  static final class Sampler {
    int peak;
    double area;
    double lastT;
    int last;

    void note(double t, int n) {
      area += last * (t - lastT);
      lastT = t;
      last = n;
      peak = Math.max(peak, n);
    }

    double mean(double end) {
      return end == 0 ? 0 : area / end;
    }
  }

  static final int HOSTS = 1000;
  static final int VMS_PER_HOST = 20;
  static final int QUEUED = 5000;

  /**
   * A large cluster: 1,000 hosts of random sizes with 20 VMs each (20,000 VMs of random sizes),
   * NICs of 10 or 25 Gb/s with 2 to 4 streams, racks of 40 hosts behind uplinks (named segments),
   * and 5,000 queued migrations of random priorities, most placed by the scheduler, some with a
   * destination. Caps 2 out and 2 in per host, 200 at once in the cluster.
   */
  static final class BigCluster {
    final SchedulerSettings settings;
    final SchedulerState state = new SchedulerState(1000);
    final Map<String, HostLoads.Known> inventories = new TreeMap<>();

    BigCluster(SchedulerSettings base, long seed) {
      Random r = new Random(seed);
      Map<String, SchedulerSettings.LinkSpec> nics = new TreeMap<>();
      List<SchedulerSettings.Segment> racks = new ArrayList<>();
      List<String> rack = new ArrayList<>();
      List<HostInventory.VmInfo> all = new ArrayList<>();
      for (int h = 0; h < HOSTS; h++) {
        String host = "h" + h;
        nics.put(
            host,
            new SchedulerSettings.LinkSpec(
                r.nextBoolean() ? 1_250_000_000L : 3_125_000_000L, 2 + r.nextInt(3)));
        rack.add(host);
        if (rack.size() == 40) {
          racks.add(
              new SchedulerSettings.Segment(
                  "rack-" + racks.size(),
                  new SchedulerSettings.LinkSpec(12_500_000_000L, 16),
                  rack));
          rack = new ArrayList<>();
        }
        List<HostInventory.VmInfo> vms = new ArrayList<>();
        for (int v = 0; v < VMS_PER_HOST; v++) {
          vms.add(
              new HostInventory.VmInfo(
                  host + "-vm" + v,
                  1 + r.nextInt(8),
                  (1 + r.nextInt(16)) * GIB,
                  (5 + r.nextInt(200)) * GIB,
                  true));
        }
        all.addAll(vms);
        long mem = (256 + 256L * r.nextInt(4)) * GIB;
        inventories.put(
            host,
            new HostLoads.Known(
                new HostInventory(
                    host, 64 + 32 * r.nextInt(3), mem, mem, 40_000 * GIB, 30_000 * GIB, vms, 0),
                0));
      }
      settings = base.withCaps(2, 2, 200).withLinks(base.nicOf("any"), nics, racks);
      java.util.Collections.shuffle(all, r);
      for (int i = 0; i < QUEUED; i++) {
        HostInventory.VmInfo vm = all.get(i);
        String src = vm.name().substring(0, vm.name().indexOf('-'));
        String dst = "";
        if (r.nextInt(5) == 0) {
          do {
            dst = "h" + r.nextInt(HOSTS);
          } while (dst.equals(src));
        }
        state.apply(
            new SchedulerEvent.JobSubmitted(
                new Job(
                    "j" + i,
                    new MigrationRequest(
                        vm.name(),
                        src,
                        dst,
                        MigrationOptions.defaults(),
                        Priority.values()[r.nextInt(3)],
                        "bench"),
                    "",
                    i + 1,
                    i + 1,
                    vm.diskBytes(),
                    vm.memoryBytes(),
                    vm.vcpus(),
                    JobState.QUEUED,
                    0,
                    0,
                    0,
                    0,
                    null,
                    "")));
      }
    }

    /** One admission round as the scheduler runs it: loads from the inventories, then decide. */
    Admission.Decision round() {
      return Admission.decide(
          state,
          HostLoads.of(inventories, state.running(), state.finished()),
          h -> true,
          h -> "active",
          settings);
    }
  }

  /**
   * Admission latency in the steady state of the big cluster: the cluster cap is reached, one
   * migration ends, and one round refills its slot (the scheduler's common case); timed from the
   * inventories to the decision.
   */
  static Map<String, Object> admissionLatency(SchedulerSettings s) {
    BigCluster c = new BigCluster(s, 7);
    Random r = new Random(11);
    long t = 1;
    long first0 = System.nanoTime();
    Admission.Decision first = c.round();
    double firstMs = (System.nanoTime() - first0) / 1e6;
    apply(c, first, t);
    int warmup = 300;
    int runs = 2000;
    double[] ms = new double[runs];
    for (int i = 0; i < warmup + runs && !c.state.queue().isEmpty(); i++) {
      List<Job> running = c.state.running();
      Job done = running.get(r.nextInt(running.size()));
      c.state.apply(new SchedulerEvent.JobEnded(done.id(), JobState.COMPLETED, null, "", ++t));
      long t0 = System.nanoTime();
      Admission.Decision d = c.round();
      long t1 = System.nanoTime();
      apply(c, d, ++t);
      if (i >= warmup) {
        ms[i - warmup] = (t1 - t0) / 1e6;
      }
    }
    Arrays.sort(ms);
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("hosts", HOSTS);
    m.put("vms", HOSTS * VMS_PER_HOST);
    m.put("queued_jobs", QUEUED);
    m.put("cluster_cap", c.settings.clusterCap());
    m.put("first_round_ms", round(firstMs));
    m.put("first_round_starts", first.starts().size());
    m.put("rounds", runs);
    m.put("admission_p50_ms", round(ms[runs / 2]));
    m.put("admission_p99_ms", round(ms[(int) (runs * 0.99)]));
    m.put("admission_max_ms", round(ms[runs - 1]));
    return m;
  }

  private static void apply(BigCluster c, Admission.Decision d, long t) {
    for (Admission.Start st : d.starts()) {
      c.state.apply(new SchedulerEvent.JobStarted(st.jobId(), st.destination(), st.bandwidth(), t));
    }
  }

  /** A rebalance plan (balance, at most 500 moves) over the big cluster, median of 7 runs. */
  static Map<String, Object> planTime(SchedulerSettings s) {
    BigCluster c = new BigCluster(s, 13);
    HostLoads loads = HostLoads.of(c.inventories, List.of(), List.of());
    double[] ms = new double[7];
    dev.ferry.protocol.SchedulerProtocol.RebalancePlan plan = null;
    for (int i = 0; i < ms.length + 2; i++) {
      long t0 = System.nanoTime();
      plan =
          Rebalancer.plan(
              dev.ferry.protocol.SchedulerProtocol.Policy.BALANCE,
              0.05,
              500,
              loads,
              vm -> true,
              h -> true,
              c.settings);
      if (i >= 2) {
        ms[i - 2] = (System.nanoTime() - t0) / 1e6;
      }
    }
    Arrays.sort(ms);
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("plan_ms", round(ms[ms.length / 2]));
    m.put("plan_moves", plan.moves().size());
    m.put("plan_spread_before", round(plan.spreadBefore()));
    m.put("plan_spread_after", round(plan.spreadAfter()));
    return m;
  }

  private static HostLoads.Known known(String host, List<HostInventory.VmInfo> vms) {
    return new HostLoads.Known(
        new HostInventory(host, 64, 512 * GIB, 512 * GIB, 20_000 * GIB, 20_000 * GIB, vms, 0), 0);
  }

  private static double round(double d) {
    return Math.round(d * 1000) / 1000.0;
  }

  @SuppressWarnings("unchecked")
  private static String markdown(Map<String, Object> r) {
    StringBuilder b = new StringBuilder();
    b.append("# Scheduler benchmark\n\n");
    b.append(
        "Drain of one host with "
            + r.get("drain_vms")
            + " VMs ("
            + ((long) r.get("drain_total_bytes")) / GIB
            + " GiB) onto five hosts, outbound cap 2, NIC "
            + ((long) r.get("nic_bytes_per_s")) / 1_000_000
            + " MB/s; virtual time, the real admission code for Ferry. Transfer lower bound: "
            + r.get("transfer_lower_bound_s")
            + " s.\n\n");
    b.append("| policy | makespan (s) | peak copies on the source NIC | mean copies |\n");
    b.append("|---|---:|---:|---:|\n");
    for (DrainResult d : (List<DrainResult>) r.get("drain")) {
      b.append(
          "| "
              + d.policy()
              + " | "
              + d.makespanS()
              + " | "
              + d.peakStreamsOnSourceNic()
              + " | "
              + d.meanStreamsOnSourceNic()
              + " |\n");
    }
    b.append(
        "\nwaves / ferry = "
            + r.get("makespan_ratio_waves_over_ferry")
            + ", timer-120s / ferry = "
            + r.get("makespan_ratio_timer120_over_ferry")
            + ", timer-30s / ferry = "
            + r.get("makespan_ratio_timer30_over_ferry")
            + ", ferry / lower bound = "
            + r.get("makespan_ratio_ferry_over_lower_bound")
            + "\n\n");
    Map<String, Object> a = (Map<String, Object>) r.get("admission");
    b.append(
        "Admission on "
            + a.get("hosts")
            + " hosts with "
            + a.get("vms")
            + " VMs and "
            + a.get("queued_jobs")
            + " queued migrations (cluster cap "
            + a.get("cluster_cap")
            + "), one round per ended migration over "
            + a.get("rounds")
            + " rounds: p50 "
            + a.get("admission_p50_ms")
            + " ms, p99 "
            + a.get("admission_p99_ms")
            + " ms, max "
            + a.get("admission_max_ms")
            + " ms (target p99 < 5 ms); the first round ("
            + a.get("first_round_starts")
            + " starts) "
            + a.get("first_round_ms")
            + " ms.\n\n");
    Map<String, Object> p = (Map<String, Object>) r.get("plan");
    b.append(
        "Rebalance plan (balance, threshold 0.05, at most 500 moves) on the same cluster: "
            + p.get("plan_ms")
            + " ms for "
            + p.get("plan_moves")
            + " moves, memory-use spread "
            + p.get("plan_spread_before")
            + " -> "
            + p.get("plan_spread_after")
            + ".\n\n");
    b.append(
        "Drain makespan / transfer lower bound: "
            + r.get("drain_makespan_ratio")
            + " (target <= 1.2).\n");
    return b.toString();
  }
}
