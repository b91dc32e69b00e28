package dev.ferry.node.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.ferry.node.libvirt.LibvirtHypervisor;
import dev.ferry.node.libvirt.LifecycleEvent;
import dev.ferry.node.testbed.Cluster;
import dev.ferry.node.testbed.GuestChecks;
import dev.ferry.node.testbed.Testbed;
import dev.ferry.protocol.FinalSyncMethod;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Migrates the same guest (writing to its disk, dirtying RAM, with one internal snapshot) with each
 * variant, at each disk size, in one run on one test bed, and records what a user cares about:
 * total time, paused window (source paused for the switchover until the destination runs, from
 * libvirt's lifecycle events on both hosts), bytes on the wire (the source host's veth), whether
 * the snapshot reverts, whether every guest write survived. Writes JSON and Markdown.
 *
 * <pre>
 *   bench/migration-bench [--quick] [--out FILE.json] [--variants a,b] [--sizes 0.5,2,4] [--reps N]
 * </pre>
 */
public final class MigrationBench {
  static final List<String> ALL =
      List.of("engine-delta", "engine-rsync", "engine-overlay", "copy-storage-all", "opennebula");

  /** One run. Field names are the report's. */
  public record Run(
      String variant,
      double disk_gib,
      int rep,
      double total_s,
      double paused_s,
      long bytes_moved,
      boolean snapshots_ok,
      boolean data_ok,
      String outcome,
      String notes) {}

  private final Testbed bed;
  private final Cluster cluster;
  private final GuestChecks checks;
  private final LibvirtHypervisor h1;
  private final LibvirtHypervisor h2;
  private final List<LifecycleEvent> events = new CopyOnWriteArrayList<>();

  private MigrationBench(Testbed bed, Cluster cluster) {
    this.bed = bed;
    this.cluster = cluster;
    this.checks = new GuestChecks(bed);
    this.h1 = new LibvirtHypervisor(bed.libvirtUri("host1"));
    this.h2 = new LibvirtHypervisor(bed.libvirtUri("host2"));
    h1.subscribe(e -> events.add(tag(e, "host1")));
    h2.subscribe(e -> events.add(tag(e, "host2")));
  }

  private static LifecycleEvent tag(LifecycleEvent e, String host) {
    return new LifecycleEvent(host + "/" + e.domain(), e.type(), e.detail(), e.at());
  }

  public static void main(String[] args) throws Exception {
    boolean quick = false;
    Path out = Path.of("bench/results/migration-bench.json");
    List<String> variants = ALL;
    List<Double> sizes = List.of(0.5, 2.0, 4.0);
    int reps = 1;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--quick" -> quick = true;
        case "--out" -> out = Path.of(args[++i]);
        case "--variants" -> variants = List.of(args[++i].split(","));
        case "--sizes" ->
            sizes = List.of(args[++i].split(",")).stream().map(Double::parseDouble).toList();
        case "--reps" -> reps = Integer.parseInt(args[++i]);
        default -> throw new IllegalArgumentException("unknown option " + args[i]);
      }
    }
    if (quick) {
      sizes = List.of(0.5);
    }
    Testbed bed = Testbed.shared(2);
    List<Run> runs = new ArrayList<>();
    double linkMBps;
    try (Cluster cluster = Cluster.start(bed, "", "host1", "host2")) {
      MigrationBench b = new MigrationBench(bed, cluster);
      linkMBps = b.linkThroughput();
      System.out.printf(Locale.ROOT, "ssh throughput host1 -> host2: %.0f MB/s%n", linkMBps);
      for (double size : sizes) {
        for (int rep = 1; rep <= reps; rep++) {
          for (String variant : variants) {
            Run r = b.run(variant, size, rep);
            runs.add(r);
            System.out.printf(
                Locale.ROOT,
                "%-16s %4.1f GiB  total %6.2f s  paused %6.3f s  %8.1f MB  snapshots %-5s data %-5s %s%n",
                r.variant(),
                r.disk_gib(),
                r.total_s(),
                r.paused_s(),
                r.bytes_moved() / 1e6,
                r.snapshots_ok(),
                r.data_ok(),
                r.notes());
          }
        }
      }
    } finally {
      bed.down();
    }
    write(out, runs, linkMBps, quick);
    System.exit(0);
  }

  /** ssh throughput from host1 to host2 (what tar, rsync and the delta go through). */
  private double linkThroughput() {
    bed.execOk(
        "host1",
        "dd",
        "if=/dev/urandom",
        "of=/var/lib/ferry/link.bin",
        "bs=1M",
        "count=512",
        "status=none");
    long t0 = System.nanoTime();
    bed.execOk("host1", "sh", "-c", "ssh host2 'cat > /dev/null' < /var/lib/ferry/link.bin");
    double s = (System.nanoTime() - t0) / 1e9;
    bed.execOk("host1", "rm", "-f", "/var/lib/ferry/link.bin");
    return 512 * 1.048576 / s;
  }

  private long txFromHost1() {
    try {
      // the root side of host1's veth receives what host1 sends
      return Long.parseLong(
          Files.readString(Path.of("/sys/class/net/tbf-host1/statistics/rx_bytes")).trim());
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  private Run run(String variant, double gib, int rep) {
    String vm = "b" + ALL.indexOf(variant) + "-" + (int) (gib * 10) + "r" + rep;
    int prefill = (int) Math.round(gib * 1024);
    bed.mkvm(
        "host1", vm, "--mem", "192", "--prefill", Integer.toString(prefill), "--snapshots", "1");
    bed.console("host1", vm).awaitProgress(Duration.ofSeconds(60));
    events.clear();
    long rx0 = txFromHost1();
    long t0 = System.nanoTime();
    String notes;
    String outcome;
    try {
      switch (variant) {
        case "engine-delta", "engine-rsync", "engine-overlay" -> {
          MigrationOptions options =
              switch (variant) {
                case "engine-delta" ->
                    MigrationOptions.defaults()
                        .withStrategy(MigrationStrategy.SUSPEND_SYNC)
                        .withFinalSync(FinalSyncMethod.BITMAP_DELTA);
                case "engine-rsync" ->
                    MigrationOptions.defaults()
                        .withStrategy(MigrationStrategy.SUSPEND_SYNC)
                        .withFinalSync(FinalSyncMethod.RSYNC);
                default -> MigrationOptions.defaults().withStrategy(MigrationStrategy.OVERLAY);
              };
          MigrationResult r =
              cluster
                  .client()
                  .migrate(
                      "bench-" + UUID.randomUUID().toString().substring(0, 8),
                      vm,
                      "host1",
                      "host2",
                      options,
                      e -> {})
                  .await(Duration.ofMinutes(20));
          outcome = r.outcome().name().toLowerCase(Locale.ROOT);
          notes =
              r.outcome() == MigrationOutcome.COMPLETED
                  ? r.message().replaceFirst("^verified and running on host2; ", "")
                      + "; "
                      + r.verification().details().get(r.verification().details().size() - 1)
                  : r.message();
        }
        case "copy-storage-all" -> {
          copyStorageAll(vm, gib);
          outcome = "completed";
          notes = "";
        }
        case "opennebula" -> {
          openNebulaFlow(vm, gib);
          outcome = "completed";
          notes = "";
        }
        default -> throw new IllegalArgumentException("unknown variant " + variant);
      }
    } catch (RuntimeException e) {
      outcome = "error";
      notes = e.getMessage();
    }
    double total = (System.nanoTime() - t0) / 1e9;
    long bytes = txFromHost1() - rx0;
    double paused = pausedWindow(vm);
    boolean dataOk = false;
    boolean snapshotsOk = false;
    if (outcome.equals("completed")) {
      try {
        checks.noWriteLost(
            "host2", vm, List.<String[]>of(new String[] {GuestChecks.disk(vm, 0), "qcow2"}));
        dataOk = true;
      } catch (AssertionError | RuntimeException e) {
        notes += (notes.isEmpty() ? "" : "; ") + "data: " + firstLine(e.getMessage());
      }
      try {
        bed.virsh("host2", "snapshot-revert", vm, "snap-0");
        snapshotsOk = "running".equals(bed.virsh("host2", "domstate", vm));
      } catch (RuntimeException e) {
        notes += (notes.isEmpty() ? "" : "; ") + "revert: " + firstLine(e.getMessage());
      }
    }
    bed.removeVm("host1", vm);
    bed.removeVm("host2", vm);
    return new Run(
        variant,
        gib,
        rep,
        round(total, 2),
        round(paused, 3),
        bytes,
        snapshotsOk,
        dataOk,
        outcome,
        notes);
  }

  private static String firstLine(String s) {
    if (s == null) {
      return "";
    }
    String l = s.strip().split("\n")[0];
    return l.length() > 160 ? l.substring(0, 160) + "..." : l;
  }

  /** Source Suspended/Migrated to the destination's first Resumed after it. */
  private double pausedWindow(String vm) {
    Instant paused = null;
    for (LifecycleEvent e : events) {
      if (e.domain().equals("host1/" + vm)
          && e.is(LifecycleEvent.Type.SUSPENDED, "MIGRATED")
          && paused == null) {
        paused = e.at();
      }
      if (paused != null
          && e.domain().equals("host2/" + vm)
          && e.type() == LifecycleEvent.Type.RESUMED) {
        return Duration.between(paused, e.at()).toNanos() / 1e9;
      }
    }
    return -1;
  }

  /** OpenNebula's driver for non-shared storage before 6368: the snapshot is lost. */
  private void copyStorageAll(String vm, double gib) {
    String disk = GuestChecks.disk(vm, 0);
    String xml = bed.virsh("host1", "snapshot-dumpxml", vm, "snap-0");
    bed.virsh("host1", "snapshot-delete", vm, "snap-0", "--metadata");
    long virtual = virtualSize("host1", disk);
    bed.execOk("host2", "mkdir", "-p", Testbed.DATASTORE + "/" + vm);
    bed.execOk("host2", "qemu-img", "create", "-q", "-f", "qcow2", disk, Long.toString(virtual));
    bed.virsh(
        "host1",
        "migrate",
        "--live",
        "--p2p",
        "--copy-storage-all",
        "--persistent",
        "--undefinesource",
        vm,
        "qemu+ssh://host2/system");
    redefine("host2", vm, xml);
  }

  /**
   * OpenNebula's current flow (after 6368): drop metadata, migrate --suspend --copy-storage-all,
   * rsync -az the qcow2 while paused, resume, redefine. docs/problem.md explains why it loses the
   * writes made after the resume.
   */
  private void openNebulaFlow(String vm, double gib) {
    String disk = GuestChecks.disk(vm, 0);
    String xml = bed.virsh("host1", "snapshot-dumpxml", vm, "snap-0");
    bed.virsh("host1", "snapshot-delete", vm, "snap-0", "--metadata");
    long virtual = virtualSize("host1", disk);
    bed.execOk("host2", "mkdir", "-p", Testbed.DATASTORE + "/" + vm);
    bed.execOk("host2", "qemu-img", "create", "-q", "-f", "qcow2", disk, Long.toString(virtual));
    bed.virsh(
        "host1",
        "migrate",
        "--live",
        "--p2p",
        "--suspend",
        "--copy-storage-all",
        "--persistent",
        "--undefinesource",
        vm,
        "qemu+ssh://host2/system");
    bed.execOk("host1", "rsync", "-az", disk, "host2:" + disk);
    redefine("host2", vm, xml);
    bed.virsh("host2", "resume", vm);
  }

  private long virtualSize(String host, String disk) {
    String json = bed.execOk(host, "qemu-img", "info", "-U", "--output=json", disk);
    return Long.parseLong(json.replaceAll("(?s).*\"virtual-size\":\\s*(\\d+).*", "$1"));
  }

  private void redefine(String host, String vm, String xml) {
    Path f = bed.hostDir(host).resolve("ferry/snap-" + vm + ".xml");
    try {
      Files.writeString(f, xml);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    bed.virsh(
        host,
        "snapshot-create",
        vm,
        "--redefine",
        "/var/lib/ferry/snap-" + vm + ".xml",
        "--current");
  }

  private static double round(double v, int digits) {
    double f = Math.pow(10, digits);
    return Math.round(v * f) / f;
  }

  private static void write(Path out, List<Run> runs, double linkMBps, boolean quick)
      throws IOException {
    Files.createDirectories(out.toAbsolutePath().getParent());
    ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    Map<String, Object> doc = new LinkedHashMap<>();
    doc.put("date", Instant.now().toString());
    doc.put("quick", quick);
    doc.put("ssh_throughput_mb_per_s", round(linkMBps, 1));
    doc.put("runs", runs);
    json.writeValue(out.toFile(), doc);
    Files.writeString(
        Path.of(out.toString().replaceAll("\\.json$", "") + ".md"), markdown(runs, linkMBps));
    System.out.println("wrote " + out + " and its .md");
  }

  static String markdown(List<Run> runs, double linkMBps) {
    StringBuilder sb = new StringBuilder();
    sb.append("# Migration benchmark\n\n");
    sb.append(
        String.format(
            Locale.ROOT,
            "One test bed, one run; guest with 192 MiB RAM writing 64 KiB records and dirtying RAM, one internal snapshot. ssh throughput host1→host2: %.0f MB/s.\n\n",
            linkMBps));
    sb.append(
        "| variant | disk GiB | total s | paused s | MB moved | snapshots ok | data ok | notes |\n");
    sb.append("|---|---|---|---|---|---|---|---|\n");
    for (Run r : runs) {
      sb.append(
          String.format(
              Locale.ROOT,
              "| %s | %.1f | %.2f | %.3f | %.1f | %s | %s | %s |\n",
              r.variant(),
              r.disk_gib(),
              r.total_s(),
              r.paused_s(),
              r.bytes_moved() / 1e6,
              r.snapshots_ok(),
              r.data_ok(),
              r.notes().replace("|", "/")));
    }
    sb.append("\n## Ratios measured in this run\n\n");
    for (Run r : runs) {
      if (!r.variant().startsWith("engine")) {
        continue;
      }
      runs.stream()
          .filter(
              c ->
                  c.variant().equals("copy-storage-all")
                      && c.disk_gib() == r.disk_gib()
                      && c.rep() == r.rep())
          .findFirst()
          .ifPresent(
              c ->
                  sb.append(
                      String.format(
                          Locale.ROOT,
                          "- %s at %.1f GiB: paused window %.2f× that of copy-storage-all%n",
                          r.variant(),
                          r.disk_gib(),
                          r.paused_s() / c.paused_s())));
      double bound = (r.disk_gib() * 1024 * 1.048576 + 192 * 1.048576) / linkMBps;
      sb.append(
          String.format(
              Locale.ROOT,
              "- %s at %.1f GiB: total %.2f× the transfer lower bound (%.1f s)%n",
              r.variant(),
              r.disk_gib(),
              r.total_s() / bound,
              bound));
    }
    for (String v : ALL) {
      List<Run> of = runs.stream().filter(r -> r.variant().equals(v)).toList();
      if (of.size() >= 2) {
        Run small = of.get(0);
        Run big = of.get(of.size() - 1);
        sb.append(
            String.format(
                Locale.ROOT,
                "- %s: paused window at %.1f GiB is %.2f× that at %.1f GiB%n",
                v,
                big.disk_gib(),
                big.paused_s() / small.paused_s(),
                small.disk_gib()));
      }
    }
    return sb.toString();
  }
}
