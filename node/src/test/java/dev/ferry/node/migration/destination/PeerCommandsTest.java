package dev.ferry.node.migration.destination;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The destination trusts the source's commands no more than the API trusts a client. */
class PeerCommandsTest {
  static final String DISK = "/ds/vm1/disk.0";
  static final Manifest M =
      new Manifest(
          "m1",
          "vm1",
          "uuid-1",
          "host1",
          "host2",
          131072,
          1,
          List.of(
              new ManifestDisk(
                  "vda", DISK, "qcow2", true, 1L << 30, 1L << 20, 1L << 20, List.of(), List.of())),
          List.of(),
          "",
          List.of("/ds/vm1"),
          0,
          List.of(DISK));

  static String xml(String name, String uuid, String file) {
    return "<domain type='qemu'><name>"
        + name
        + "</name><uuid>"
        + uuid
        + "</uuid><devices><disk type='file' device='disk'><source file='"
        + file
        + "'/><target dev='vda'/></disk></devices></domain>";
  }

  @Test
  void theCommandsTheSourceSendsArePassed() {
    assertEquals(
        Optional.empty(),
        PeerCommands.refusal(M, new DestinationProtocol.CreateOverlays(OverlayOps.plan(M), null)));
    assertEquals(
        Optional.empty(),
        PeerCommands.refusal(
            M, new DestinationProtocol.StartCold(xml("vm1", "uuid-1", DISK), null)));
    assertEquals(
        Optional.empty(),
        PeerCommands.refusal(M, new DestinationProtocol.MigrateBack("host1", null)));
    assertEquals(
        Optional.empty(),
        PeerCommands.refusal(
            M,
            new DestinationProtocol.FinalSynced(
                List.of(new DestinationProtocol.DiskBitmap(DISK, "ferry-m1")), null)));
  }

  @Test
  void anythingTheManifestDoesNotNameIsRefused() {
    var planned = OverlayOps.plan(M).get(0);
    var elsewhere =
        new DestinationProtocol.OverlaySpec(
            "vda",
            "/etc/ferry-overlay.qcow2",
            planned.base(),
            planned.baseFormat(),
            planned.virtualSize(),
            planned.shallow());
    assertTrue(
        PeerCommands.refusal(M, new DestinationProtocol.MergeOverlays(List.of(elsewhere), null))
            .orElseThrow()
            .contains("not the ones planned"));
    assertTrue(
        PeerCommands.refusal(
                M, new DestinationProtocol.StartCold(xml("vm1", "uuid-1", "/etc/shadow"), null))
            .orElseThrow()
            .contains("are not the migration's"));
    assertTrue(
        PeerCommands.refusal(
                M, new DestinationProtocol.StartCold(xml("other", "uuid-2", DISK), null))
            .orElseThrow()
            .contains("not of vm1"));
    assertTrue(
        PeerCommands.refusal(M, new DestinationProtocol.StartCold("<!DOCTYPE x []><domain/>", null))
            .orElseThrow()
            .contains("does not parse"));
    assertTrue(
        PeerCommands.refusal(M, new DestinationProtocol.MigrateBack("evil;host", null))
            .orElseThrow()
            .contains("the VM came from host1"));
    assertTrue(
        PeerCommands.refusal(
                M,
                new DestinationProtocol.FinalSynced(
                    List.of(new DestinationProtocol.DiskBitmap(DISK, "user-backup")), null))
            .orElseThrow()
            .contains("not this migration's"));
  }
}
