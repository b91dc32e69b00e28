package dev.ferry.node.migration.overlay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.host.HostFiles;
import dev.ferry.node.image.QemuImgTool;
import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import dev.ferry.protocol.DestinationProtocol.OverlaySpec;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** With the real qemu-img: a leftover overlay never survives into a migration (K1). */
class OverlayOpsTest {
  private static final LocalProcessRunner runner = new LocalProcessRunner();

  @TempDir Path dir;

  @AfterAll
  static void close() {
    runner.close();
  }

  private String run(String... argv) {
    return runner.capture(ProcessSpec.of(argv)).stdoutOrThrow();
  }

  @Test
  void destinationOverlaysAreAlwaysCreatedFresh() {
    Path base = dir.resolve("disk.0");
    Path overlay = dir.resolve(".ferry-overlay-m1-vda.qcow2");
    run("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), "64M");
    // a leftover from an earlier attempt: an overlay with data of its own at 32M
    run(
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        base.toString(),
        overlay.toString(),
        "64M");
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0xee 32M 1M", overlay.toString());
    assertTrue(
        run("qemu-img", "map", "--output=json", overlay.toString())
            .contains("\"depth\": 0, \"present\": true, \"zero\": false, \"data\": true"));

    OverlayOps ops =
        new OverlayOps(
            null, new QemuImgTool(runner, "qemu-img", Duration.ofSeconds(30)), HostFiles.DIRECT);
    try {
      ops.createOnDestination(
          List.of(
              new OverlaySpec(
                  "vda", overlay.toString(), base.toString(), "qcow2", 64L << 20, false)));
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    String map = run("qemu-img", "map", "--output=json", overlay.toString());
    assertFalse(
        map.contains("\"depth\": 0, \"present\": true, \"zero\": false, \"data\": true"),
        "nothing of the leftover shows through: " + map);
    String info = run("qemu-img", "info", "--output=json", overlay.toString());
    assertTrue(info.contains("\"backing-filename\": \"" + base + "\""), info);
    assertEquals(
        64L << 20, Long.parseLong(info.replaceAll("(?s).*\"virtual-size\": (\\d+).*", "$1")));
  }
}
