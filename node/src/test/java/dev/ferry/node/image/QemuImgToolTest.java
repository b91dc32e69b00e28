package dev.ferry.node.image;

import static dev.ferry.node.process.ScriptedProcessRunner.argvContains;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.node.process.ScriptedProcessRunner.Reply;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Parsing of qemu-img's JSON, from outputs recorded on the test bed (QEMU 7.2). */
class QemuImgToolTest {

  static String recorded(String name) {
    try (InputStream in = QemuImgToolTest.class.getResourceAsStream("/recorded/" + name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException | NullPointerException e) {
      throw new AssertionError("missing recording " + name, e);
    }
  }

  @Test
  void infoOfAQcow2WithTwoInternalSnapshots() {
    ImageInfo info = QemuImgTool.parseInfo(recorded("qemu-img-info-qcow2-snapshots.json"));
    assertEquals(ImageFormat.QCOW2, info.format());
    assertEquals(536870912L, info.virtualSize());
    assertEquals(325210112L, info.actualSize());
    assertEquals(Optional.of(65536L), info.clusterSize());
    assertEquals(Optional.of("1.1"), info.compat());
    assertTrue(info.supportsPersistentBitmaps());
    assertEquals(
        List.of(
            new ImageSnapshot("1", "snap-0", 122696097, 1795667068, 603193000, 9, 535540614),
            new ImageSnapshot("2", "snap-1", 122720667, 1795667072, 400198000, 13, 118770612)),
        info.snapshots());
    assertEquals(List.of(), info.bitmaps());
  }

  @Test
  void infoOfARawImage() {
    ImageInfo info = QemuImgTool.parseInfo(recorded("qemu-img-info-raw.json"));
    assertEquals(ImageFormat.RAW, info.format());
    assertTrue(info.snapshots().isEmpty());
    assertFalse(info.supportsPersistentBitmaps());
  }

  @Test
  void bitmapsAreListed() {
    String json =
        "{\"filename\":\"/d/disk.0\",\"format\":\"qcow2\",\"virtual-size\":1048576,"
            + "\"format-specific\":{\"type\":\"qcow2\",\"data\":{\"compat\":\"1.1\","
            + "\"bitmaps\":[{\"flags\":[\"auto\"],\"name\":\"ferry-m1\",\"granularity\":65536}]}}}";
    assertEquals(List.of("ferry-m1"), QemuImgTool.parseInfo(json).bitmaps());
  }

  @Test
  void backingChainIsAnArray() {
    List<ImageInfo> chain =
        QemuImgTool.parseChain(recorded("qemu-img-info-backing-chain-single.json"));
    assertEquals(1, chain.size());
    assertEquals(ImageFormat.QCOW2, chain.get(0).format());
  }

  @Test
  void checkOfARunningImageShowsLeaksAndIsNotClean() {
    CheckResult r = QemuImgTool.parseCheck(3, recorded("qemu-img-check-clean.json"));
    assertEquals(1, r.leaks());
    assertFalse(r.clean());
    assertEquals(1046, r.allocatedClusters());
  }

  @Test
  void checkOfAClosedImageIsClean() {
    CheckResult r = QemuImgTool.parseCheck(0, recorded("qemu-img-check-clean-closed.json"));
    assertTrue(r.clean());
    assertTrue(r.supported());
  }

  @Test
  void rawImagesHaveNoCheck() {
    CheckResult r = QemuImgTool.parseCheck(63, "");
    assertFalse(r.supported());
    assertTrue(r.clean());
  }

  @Test
  void garbageIsAClearError() {
    ImageToolException e =
        assertThrows(ImageToolException.class, () -> QemuImgTool.parseInfo("qemu-img: oops"));
    assertTrue(e.getMessage().startsWith("cannot parse qemu-img info output"));
  }

  @Test
  void sharedAccessUsesMinusUAndPathsMustBeAbsolute() {
    ScriptedProcessRunner runner =
        new ScriptedProcessRunner()
            .on(argvContains("info"), Reply.ok(recorded("qemu-img-info-raw.json")))
            .on(
                argvContains("check"),
                Reply.fail(63, "qemu-img: This image format does not support checks"));
    QemuImgTool tool = new QemuImgTool(runner, "qemu-img", Duration.ofSeconds(5));
    tool.info(Path.of("/d/disk.2"), ImageTool.Access.SHARED);
    tool.info(Path.of("/d/disk.2"), ImageTool.Access.EXCLUSIVE);
    assertFalse(tool.check(Path.of("/d/disk.2"), ImageTool.Access.EXCLUSIVE).supported());
    assertEquals(
        List.of("qemu-img", "info", "-U", "--output=json", "/d/disk.2"),
        runner.invocations().get(0));
    assertEquals(
        List.of("qemu-img", "info", "--output=json", "/d/disk.2"), runner.invocations().get(1));
    // qemu-img would read "json:{...}" as options, not a file
    assertThrows(
        IllegalArgumentException.class,
        () -> tool.info(Path.of("json:{\"driver\":\"nbd\"}"), ImageTool.Access.SHARED));
  }

  @Test
  void failuresCarryQemuImgsMessage() {
    ScriptedProcessRunner runner =
        new ScriptedProcessRunner()
            .on(
                argvContains("info"),
                Reply.fail(1, "qemu-img: Could not open '/d/x': No such file or directory"));
    QemuImgTool tool = new QemuImgTool(runner, "qemu-img", Duration.ofSeconds(5));
    ImageToolException e =
        assertThrows(
            ImageToolException.class, () -> tool.info(Path.of("/d/x"), ImageTool.Access.SHARED));
    assertEquals(
        "qemu-img exited 1: qemu-img: Could not open '/d/x': No such file or directory",
        e.getMessage());
  }
}
