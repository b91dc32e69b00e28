package dev.ferry.node.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.testbed.GuestConsole;
import dev.ferry.node.testbed.Testbed;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The test bed itself: three isolated hypervisor hosts, a guest migrated host1 → host2 → host3 with
 * plain libvirt, and a teardown that leaves no process, link, mount or namespace behind.
 */
class TestbedIT {
  private static final String VM = "tb-plain";

  @Test
  void threeHostsMigrateByHandAndLeaveNothingBehind() {
    Testbed bed = Testbed.controller();
    bed.down();
    assertEquals(List.of(), bed.leftovers(), "a bed that is down leaves nothing");
    bed.up(3);

    Set<String> uuids = new HashSet<>();
    for (String h : List.of("host1", "host2", "host3")) {
      assertEquals(h, bed.execOk(h, "hostname").strip());
      Matcher m =
          Pattern.compile("<uuid>([0-9a-f-]+)</uuid>").matcher(bed.virsh(h, "capabilities"));
      assertTrue(m.find());
      uuids.add(m.group(1));
      assertTrue(bed.exec(h, "test", "-d", Testbed.DATASTORE).result().accepted());
    }
    assertEquals(3, uuids.size(), "every host has its own libvirt host UUID");

    // each datastore is private to its host, at the same path
    bed.execOk("host1", "touch", Testbed.DATASTORE + "/only-on-host1");
    assertFalse(
        bed.exec("host2", "test", "-e", Testbed.DATASTORE + "/only-on-host1").result().accepted());

    // ssh mesh by name, with host keys checked: an unknown host key is refused
    assertEquals("host3", bed.execOk("host1", "ssh", "host3", "hostname").strip());
    var unchecked = bed.exec("host1", "ssh", "-o", "UserKnownHostsFile=/dev/null", "host2", "true");
    assertEquals(255, unchecked.result().exitCode(), "ssh accepted an unknown host key");

    // a guest migrated by hand with plain libvirt: host1 -> host2 -> host3
    GuestConsole c1 = bed.mkvm("host1", VM, "--mem", "128", "--prefill", "16");
    String disk = Testbed.DATASTORE + "/" + VM + "/disk.0";
    String[] hops = {"host1", "host2", "host3"};
    for (int i = 0; i + 1 < hops.length; i++) {
      String from = hops[i];
      String to = hops[i + 1];
      bed.execOk(to, "mkdir", "-p", Testbed.DATASTORE + "/" + VM);
      bed.execOk(to, "qemu-img", "create", "-q", "-f", "qcow2", disk, "512M");
      bed.virsh(
          from,
          "migrate",
          "--live",
          "--p2p",
          "--copy-storage-all",
          "--persistent",
          "--undefinesource",
          VM,
          "qemu+ssh://" + to + "/system");
      assertEquals("running", bed.virsh(to, "domstate", VM));
      assertNotEquals("running", bed.exec(from, "virsh", "domstate", VM).stdout().strip());
    }
    GuestConsole c3 = bed.console("host3", VM);
    c3.awaitProgress(Duration.ofSeconds(60));
    assertEquals(0, c1.verifyFailures() + c3.verifyFailures(), "the guest saw no bad reads");

    bed.down();
    assertEquals(List.of(), bed.leftovers(), "down leaves no process, link, mount or namespace");
  }
}
