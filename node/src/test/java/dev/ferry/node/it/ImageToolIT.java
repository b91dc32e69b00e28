package dev.ferry.node.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.image.CheckResult;
import dev.ferry.node.image.ImageFormat;
import dev.ferry.node.image.ImageInfo;
import dev.ferry.node.image.ImageSnapshot;
import dev.ferry.node.image.ImageTool;
import dev.ferry.node.image.ImageTool.Access;
import dev.ferry.node.image.ImageToolException;
import dev.ferry.node.image.QemuImgTool;
import dev.ferry.node.testbed.Testbed;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Every {@link ImageTool} method with the real qemu-img 7.2, inside a test-bed host. */
class ImageToolIT {
  private static final String VM = "img-vm";
  private static final String DIR = Testbed.DATASTORE + "/" + VM;
  private static Testbed bed;
  private static ImageTool tool;

  @BeforeAll
  static void up() {
    bed = Testbed.shared(3);
    bed.mkvm(
        "host1", VM, "--mem", "128", "--prefill", "16", "--snapshots", "1", "--extra", "raw:64");
    tool = new QemuImgTool(bed.in("host1"), "qemu-img", Duration.ofSeconds(60));
  }

  @AfterAll
  static void down() {
    bed.removeVm("host1", VM);
  }

  @Test
  void infoOfARunningImageNeedsSharedAccess() {
    Path disk = Path.of(DIR + "/disk.0");
    ImageInfo info = tool.info(disk, Access.SHARED);
    assertEquals(ImageFormat.QCOW2, info.format());
    assertEquals(512L << 20, info.virtualSize());
    assertEquals(List.of("snap-0"), info.snapshots().stream().map(ImageSnapshot::name).toList());
    assertTrue(info.snapshots().get(0).vmStateSize() > 0, "a running snapshot carries VM state");
    assertTrue(info.supportsPersistentBitmaps());

    ImageToolException locked =
        assertThrows(ImageToolException.class, () -> tool.info(disk, Access.EXCLUSIVE));
    assertTrue(locked.getMessage().contains("lock"), locked.getMessage());

    ImageInfo raw = tool.info(Path.of(DIR + "/disk.1"), Access.SHARED);
    assertEquals(ImageFormat.RAW, raw.format());
    assertFalse(tool.check(Path.of(DIR + "/disk.1"), Access.SHARED).supported());
  }

  @Test
  void chainCheckCreateAndBitmaps() {
    Path base = Path.of("/var/lib/one/datastores/0/" + VM + "/scratch.base");
    Path top = Path.of("/var/lib/one/datastores/0/" + VM + "/scratch.top");
    tool.create(base, ImageFormat.QCOW2, 64L << 20, Optional.empty());
    tool.create(
        top,
        ImageFormat.QCOW2,
        64L << 20,
        Optional.of(new ImageTool.Backing(base.toString(), ImageFormat.QCOW2)));
    List<ImageInfo> chain = tool.chain(top, Access.EXCLUSIVE);
    assertEquals(2, chain.size());
    assertEquals(Optional.of(base.toString()), chain.get(0).backingFilename());
    assertEquals(base.toString(), chain.get(1).filename());

    CheckResult clean = tool.check(top, Access.EXCLUSIVE);
    assertTrue(clean.supported() && clean.clean(), clean.describe());

    // a persistent bitmap written by qemu-img itself, then removed through the port
    bed.execOk("host1", "qemu-img", "bitmap", "--add", top.toString(), "ferry-it");
    assertEquals(List.of("ferry-it"), tool.info(top, Access.EXCLUSIVE).bitmaps());
    tool.removeBitmap(top, "ferry-it");
    assertEquals(List.of(), tool.info(top, Access.EXCLUSIVE).bitmaps());
  }

  @Test
  void checkFindsALeakedCluster() throws Exception {
    Path img = Path.of("/var/lib/one/datastores/0/" + VM + "/leaky.qcow2");
    tool.create(img, ImageFormat.QCOW2, 16L << 20, Optional.empty());
    bed.execOk("host1", "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", img.toString());
    // give an unused cluster (40, inside the file once it is 4 MiB long) a refcount of 1 behind
    // qemu's back: a cluster that is counted but referenced by nothing is a leak
    Path file = bed.datastoreFile("host1", img.toString());
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ch.truncate(4L << 20);
      long refcountTable = read64(ch, 48);
      long refcountBlock = read64(ch, refcountTable);
      ch.write(ByteBuffer.allocate(2).putShort(0, (short) 1), refcountBlock + 2 * 40);
    }
    bed.execOk("host1", "truncate", "-s", "4M", img.toString());
    CheckResult r = tool.check(img, Access.EXCLUSIVE);
    assertTrue(r.supported());
    assertEquals(1, r.leaks(), r.describe());
    assertEquals(0, r.corruptions());
    assertFalse(r.clean());
  }

  private static long read64(FileChannel ch, long offset) throws java.io.IOException {
    ByteBuffer b = ByteBuffer.allocate(8);
    ch.read(b, offset);
    return b.getLong(0);
  }
}
