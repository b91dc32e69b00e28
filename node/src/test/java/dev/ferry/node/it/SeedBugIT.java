package dev.ferry.node.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.image.ImageSnapshot;
import dev.ferry.node.image.ImageTool.Access;
import dev.ferry.node.image.QemuImgTool;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.HypervisorException;
import dev.ferry.node.libvirt.LibvirtHypervisor;
import dev.ferry.node.libvirt.MigrationFlag;
import dev.ferry.node.libvirt.MigrationRequest;
import dev.ferry.node.libvirt.SnapshotDefinition;
import dev.ferry.node.testbed.Testbed;
import java.nio.file.Path;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Why Ferry exists (OpenNebula issue 6368), reproduced through our own adapters: a guest with an
 * internal snapshot, migrated the way OpenNebula's driver does for non-shared storage ({@code
 * --copy-storage-all}), arrives with libvirt's snapshot metadata but without the snapshot in the
 * image, and reverting to it kills the VM. If this test ever fails, libvirt or QEMU changed and the
 * engine's assumptions must be checked again.
 */
class SeedBugIT {
  private static final String VM = "seed-bug";

  @AfterAll
  static void cleanUp() {
    Testbed bed = Testbed.shared(3);
    bed.removeVm("host1", VM);
    bed.removeVm("host2", VM);
  }

  @Test
  void copyStorageAllLosesInternalSnapshotsAndRevertKillsTheVm() {
    Testbed bed = Testbed.shared(3);
    bed.mkvm("host1", VM, "--mem", "128", "--prefill", "16", "--snapshots", "1");
    String disk = Testbed.DATASTORE + "/" + VM + "/disk.0";
    try (LibvirtHypervisor h1 = new LibvirtHypervisor(bed.libvirtUri("host1"));
        LibvirtHypervisor h2 = new LibvirtHypervisor(bed.libvirtUri("host2"))) {
      QemuImgTool img1 = new QemuImgTool(bed.in("host1"), "qemu-img", Duration.ofSeconds(60));
      QemuImgTool img2 = new QemuImgTool(bed.in("host2"), "qemu-img", Duration.ofSeconds(60));
      List<SnapshotDefinition> snaps = h1.snapshots(VM);
      assertEquals(1, snaps.size());
      assertTrue(img1.info(Path.of(disk), Access.SHARED).snapshots().get(0).vmStateSize() > 0);

      MigrationRequest copyStorageAll =
          new MigrationRequest(
              "qemu+ssh://host2/system",
              EnumSet.of(
                  MigrationFlag.LIVE,
                  MigrationFlag.PEER2PEER,
                  MigrationFlag.PERSIST_DEST,
                  MigrationFlag.UNDEFINE_SOURCE,
                  MigrationFlag.NON_SHARED_DISK),
              OptionalLong.empty(),
              List.of(),
              Optional.empty());
      HypervisorException refused =
          assertThrows(HypervisorException.class, () -> h1.migrate(VM, copyStorageAll));
      assertTrue(
          refused.getMessage().contains("cannot migrate domain with 1 snapshots"),
          refused.getMessage());

      // what OpenNebula's driver does: drop the metadata, pre-create, mirror, redefine
      h1.deleteSnapshotMetadata(VM, "snap-0");
      bed.execOk("host2", "mkdir", "-p", Testbed.DATASTORE + "/" + VM);
      bed.execOk("host2", "qemu-img", "create", "-q", "-f", "qcow2", disk, "512M");
      h1.migrate(VM, copyStorageAll);
      h2.redefineSnapshot(VM, snaps.get(0).xml(), true);

      assertEquals(
          List.of("snap-0"),
          h2.snapshots(VM).stream().map(SnapshotDefinition::name).toList(),
          "libvirt lists the snapshot");
      List<ImageSnapshot> inImage = img2.info(Path.of(disk), Access.SHARED).snapshots();
      assertEquals(List.of(), inImage, "but the image on the destination has no snapshot");
      assertEquals(
          1,
          img1.info(Path.of(disk), Access.SHARED).snapshots().size(),
          "it stayed behind on the source");

      HypervisorException revert =
          assertThrows(HypervisorException.class, () -> h2.revertToSnapshot(VM, "snap-0"));
      assertTrue(
          revert.getMessage().contains("does not exist in one or more devices"),
          revert.getMessage());
      assertEquals(
          DomainState.SHUTOFF, h2.lookup(VM).orElseThrow().state(), "and the VM is left shut off");
    }
  }
}
