package dev.ferry.node.libvirt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Domain and snapshot XML recorded from libvirt 9.0 on the test bed. */
class DomainXmlTest {

  static String recorded(String name) {
    try (InputStream in = DomainXmlTest.class.getResourceAsStream("/recorded/" + name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException | NullPointerException e) {
      throw new AssertionError("missing recording " + name, e);
    }
  }

  @Test
  void runningDomainWithFourDisks() {
    DomainDefinition d = DomainXml.parseDomain(recorded("domain-running-4-disks.xml"));
    assertEquals("vm1", d.name());
    assertEquals("qemu", d.type());
    assertEquals(196608, d.memoryKiB());
    assertEquals(1, d.vcpus());
    assertEquals(
        List.of("vda", "vdb", "vdc", "hdc"),
        d.disks().stream().map(DiskDefinition::target).toList());

    DiskDefinition vda = d.disks().get(0);
    assertEquals(Optional.of("/var/lib/one/datastores/0/vm1/disk.0"), vda.sourceFile());
    assertEquals(Optional.of("qcow2"), vda.driverType());
    assertEquals("virtio", vda.bus());
    assertTrue(vda.writableFile());
    assertTrue(vda.backingFiles().isEmpty());

    assertEquals(Optional.of("raw"), d.disks().get(2).driverType());
    DiskDefinition cdrom = d.disks().get(3);
    assertEquals("cdrom", cdrom.device());
    assertTrue(cdrom.readOnly());
    assertFalse(cdrom.writableFile());
  }

  @Test
  void snapshotWithParent() {
    SnapshotDefinition s = DomainXml.parseSnapshot(recorded("snapshot-snap-1.xml"));
    assertEquals("snap-1", s.name());
    assertEquals(Optional.of("snap-0"), s.parent());
    assertEquals("running", s.state());
    assertTrue(s.creationTime() > 0);
    SnapshotDefinition root = DomainXml.parseSnapshot(recorded("snapshot-snap-0.xml"));
    assertEquals(Optional.empty(), root.parent());
  }

  @Test
  void snapshotsAreOrderedParentsFirst() {
    SnapshotDefinition a = new SnapshotDefinition("a", Optional.empty(), "running", 10, "");
    SnapshotDefinition b = new SnapshotDefinition("b", Optional.of("a"), "running", 5, "");
    SnapshotDefinition c = new SnapshotDefinition("c", Optional.of("b"), "running", 1, "");
    SnapshotDefinition d = new SnapshotDefinition("d", Optional.of("a"), "running", 20, "");
    assertEquals(
        List.of("a", "b", "c", "d"),
        LibvirtHypervisor.topological(List.of(d, c, b, a)).stream()
            .map(SnapshotDefinition::name)
            .toList());
  }

  @Test
  void doctypesAndEntitiesAreRefused() {
    String xxe =
        "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
            + "<domain><name>&x;</name></domain>";
    assertThrows(IllegalArgumentException.class, () -> DomainXml.parseDomain(xxe));
  }

  @Test
  void wrongDocumentIsAClearError() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class, () -> DomainXml.parseDomain("<domainsnapshot/>"));
    assertEquals("not a domain XML: <domainsnapshot>", e.getMessage());
  }

  @Test
  void stateOutsideTheDisksIsFound() {
    assertEquals(
        List.of(
            "UEFI variables (NVRAM /var/lib/libvirt/qemu/nvram/vm1_VARS.fd)",
            "a TPM (model tpm-crb, swtpm state)"),
        DomainXml.stateOutsideDisks(
            "<domain><name>vm1</name><os><type>hvm</type>"
                + "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>"
                + "<nvram>/var/lib/libvirt/qemu/nvram/vm1_VARS.fd</nvram></os>"
                + "<devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
                + "</devices></domain>"));
    assertEquals(List.of(), DomainXml.stateOutsideDisks("<domain><name>vm1</name></domain>"));
  }
}
