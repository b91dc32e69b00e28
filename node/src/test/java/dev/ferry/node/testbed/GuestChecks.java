package dev.ferry.node.testbed;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** What a user cares about after a migration, checked on the test bed's real hosts. */
public final class GuestChecks {
  private static final Pattern HEX_LINE =
      Pattern.compile("^[0-9a-f]{8}:\\s+((?:[0-9a-f]{2}\\s)+)", Pattern.MULTILINE);
  private static final Pattern TBLAST = Pattern.compile("TBLAST (\\d+)");

  private final Testbed bed;

  public GuestChecks(Testbed bed) {
    this.bed = bed;
  }

  public static String disk(String vm, int n) {
    return Testbed.DATASTORE + "/" + vm + "/disk." + n;
  }

  /** The VM is active on {@code host} and defined nowhere else. */
  public void runsOnlyOn(String vm, String host, List<String> hosts) {
    assertEquals("running", bed.virsh(host, "domstate", vm), vm + " on " + host);
    for (String h : hosts) {
      if (!h.equals(host)) {
        assertFalse(
            bed.exec(h, "virsh", "dominfo", vm).result().accepted(),
            vm + " is still defined on " + h);
      }
    }
  }

  /**
   * The end state every fault test asks for: the VM runs on {@code host} alone, every write of its
   * first (qcow2) disk is there, and reverting to {@code snapshot} works.
   */
  public void runsWholeOnlyOn(String vm, String host, List<String> hosts, String snapshot) {
    runsOnlyOn(vm, host, hosts);
    noWriteLost(host, vm, List.<String[]>of(new String[] {disk(vm, 0), "qcow2"}));
    revertWorks(host, vm, snapshot);
  }

  /** Internal snapshot names in the qcow2 file, as qemu-img sees them on {@code host}. */
  public List<String> snapshotsInImage(String host, String disk) {
    String json = bed.execOk(host, "qemu-img", "info", "-U", "--output=json", disk);
    Matcher m = Pattern.compile("\"name\":\\s*\"([^\"]+)\"").matcher(json);
    List<String> names = new ArrayList<>();
    while (m.find()) {
      names.add(m.group(1));
    }
    return names;
  }

  /** The persistent dirty bitmaps stored in an image (qemu-img info -U). */
  public List<String> bitmapsInImage(String host, String disk) {
    String json = bed.execOk(host, "qemu-img", "info", "-U", "--output=json", disk);
    try {
      List<String> names = new ArrayList<>();
      for (com.fasterxml.jackson.databind.JsonNode b :
          new com.fasterxml.jackson.databind.ObjectMapper()
              .readTree(json)
              .path("format-specific")
              .path("data")
              .path("bitmaps")) {
        names.add(b.path("name").asText());
      }
      return names;
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /** Adds a persistent dirty bitmap to the running VM's first disk, as a Ferry migration does. */
  public void addBitmap(String host, String vm, String name) {
    String blocks = bed.virsh(host, "qemu-monitor-command", vm, "{\"execute\":\"query-block\"}");
    Matcher node = Pattern.compile("\"node-name\":\\s*\"([^\"]+)\"").matcher(blocks);
    assertTrue(node.find(), blocks);
    bed.virsh(
        host,
        "qemu-monitor-command",
        vm,
        "{\"execute\":\"block-dirty-bitmap-add\",\"arguments\":{\"node\":\""
            + node.group(1)
            + "\",\"name\":\""
            + name
            + "\",\"persistent\":true}}");
  }

  public List<String> libvirtSnapshots(String host, String vm) {
    String out = bed.virsh(host, "snapshot-list", "--topological", "--name", vm);
    return out.isBlank() ? List.of() : List.of(out.split("\\s+"));
  }

  /** Reverts to a snapshot on {@code host} and checks the guest runs and writes again. */
  public void revertWorks(String host, String vm, String snapshot) {
    GuestConsole console = bed.console(host, vm);
    int offset = console.length();
    bed.virsh(host, "snapshot-revert", vm, snapshot);
    assertEquals("running", bed.virsh(host, "domstate", vm), "after reverting to " + snapshot);
    console.awaitProgressAfter(offset, Duration.ofSeconds(90));
  }

  /** The TBLAST header of a disk file, read with qemu-io on a guest that is shut off. */
  public long headerInFile(String host, String disk, String format) {
    String out = bed.execOk(host, "qemu-io", "-r", "-f", format, "-c", "read -v 0 32", disk);
    StringBuilder bytes = new StringBuilder();
    Matcher m = HEX_LINE.matcher(out);
    while (m.find()) {
      for (String hex : m.group(1).trim().split("\\s+")) {
        int b = Integer.parseInt(hex, 16);
        bytes.append(b == 0 ? ' ' : (char) b);
      }
    }
    Matcher t =
        TBLAST.matcher(
            new String(
                bytes.toString().getBytes(StandardCharsets.ISO_8859_1),
                StandardCharsets.ISO_8859_1));
    assertTrue(t.find(), "no TBLAST header in " + disk + " on " + host + ": " + bytes);
    return Long.parseLong(t.group(1));
  }

  /**
   * No write lost: a clean shutdown, the guest's last record equals the header in each file, and a
   * cold boot finds every checked record intact.
   *
   * @param disks files the guest writes to, with their formats
   */
  public void noWriteLost(String host, String vm, List<String[]> disks) {
    noWriteLost(
        host,
        vm,
        disks,
        () -> "shut off".equals(bed.exec(host, "virsh", "domstate", vm).stdout().strip()),
        () -> bed.virsh(host, "start", vm));
  }

  /**
   * {@link #noWriteLost} for a transient domain (OpenNebula's): after the shutdown no definition is
   * left on the host, and {@code redeploy} boots it again from its files.
   */
  public void noWriteLostThroughARedeploy(
      String host, String vm, List<String[]> disks, Runnable redeploy) {
    noWriteLost(
        host,
        vm,
        disks,
        () -> !bed.exec(host, "virsh", "dominfo", vm).result().accepted(),
        redeploy);
  }

  private void noWriteLost(
      String host,
      String vm,
      List<String[]> disks,
      java.util.concurrent.Callable<Boolean> off,
      Runnable boot) {
    GuestConsole console = bed.console(host, vm);
    long before = console.lastShutdownRecord().orElse(-1);
    bed.virsh(host, "shutdown", vm);
    await().atMost(Duration.ofSeconds(90)).pollInterval(Duration.ofMillis(300)).until(off);
    long last = console.awaitShutdownRecord(before, Duration.ofSeconds(10));
    for (String[] d : disks) {
      assertEquals(
          last,
          headerInFile(host, d[0], d[1]),
          "last record the guest wrote vs the header in " + d[0]);
    }
    assertEquals(0, console.verifyFailures(), "the guest read back what it wrote while running");
    int boots = console.readyCount();
    boot.run();
    await().atMost(Duration.ofSeconds(90)).until(() -> console.readyCount() > boots);
    List<GuestConsole.BootCheck> checks = console.lastBootChecks();
    assertEquals(disks.size(), checks.size(), "a boot check per disk: " + checks);
    for (GuestConsole.BootCheck c : checks) {
      assertEquals(last, c.lastOnDisk(), "cold boot header of " + c.disk());
      assertEquals(0, c.bad(), "cold boot found bad records on " + c.disk());
      assertTrue(c.ok() > 0, "cold boot checked records on " + c.disk());
    }
  }
}
