package dev.ferry.node.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The dirty-bitmap cluster delta on real qcow2 files made by qemu-img and qemu-io: a copy taken
 * after the bitmap was added ends up with every referenced cluster equal to the final source's, and
 * the delta is a small fraction of the file.
 */
class Qcow2DeltaTest {
  private static final LocalProcessRunner runner = new LocalProcessRunner();

  @TempDir Path dir;

  @AfterAll
  static void close() {
    runner.close();
  }

  private void run(String... argv) {
    runner.run(ProcessSpec.of(argv), l -> {}).orThrow();
  }

  private void io(Path image, String... commands) {
    java.util.List<String> argv =
        new java.util.ArrayList<>(java.util.List.of("qemu-io", "-f", "qcow2"));
    for (String c : commands) {
      argv.add("-c");
      argv.add(c);
    }
    argv.add(image.toString());
    runner.run(ProcessSpec.of(argv), l -> {}).orThrow();
  }

  @Test
  void deltaMakesTheCopyByteIdenticalAndIsSmall() throws Exception {
    Path src = dir.resolve("disk.0");
    run("qemu-img", "create", "-q", "-f", "qcow2", src.toString(), "256M");
    io(src, "write -P 0x11 0 16M", "write -P 0x12 100M 8M");
    run("qemu-img", "snapshot", "-c", "snap-0", src.toString());
    run("qemu-img", "bitmap", "--add", src.toString(), "ferry-t");
    Path copy = dir.resolve("copy");
    Files.copy(src, copy, StandardCopyOption.COPY_ATTRIBUTES);
    Path control = dir.resolve("control");
    Files.copy(src, control);
    // after the copy: overwrite data shared with the snapshot (copy-on-write), write new areas,
    // discard, and grow the file
    io(
        src,
        "write -P 0x21 1M 1M",
        "write -P 0x22 200M 2M",
        "discard 4M 1M",
        "write -P 0x23 255M 64k");

    DeltaPlan plan = Qcow2DeltaPlanner.plan(src, "ferry-t");
    long dataBytes = plan.bytes(DeltaPlan.Kind.DATA);
    assertTrue(dataBytes >= (3L << 20) && dataBytes <= (4L << 20), "data bytes " + dataBytes);
    assertTrue(plan.bytes() < Files.size(src) / 4, plan.bytes() + " of " + Files.size(src));
    assertEquals(Files.size(src), plan.fileSize());

    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    byte[] stream;
    try (InputStream in = DeltaStream.open(src, plan)) {
      stream = in.readAllBytes();
    }
    assertEquals(DeltaStream.encodedSize(plan), stream.length);
    int code =
        DeltaApplier.run(
            copy, new ByteArrayInputStream(stream), new PrintStream(out), new PrintStream(err));
    assertEquals(0, code, err.toString(StandardCharsets.UTF_8));
    String said = out.toString(StandardCharsets.UTF_8);
    assertTrue(said.startsWith(DeltaApplier.READY + "\n" + DeltaApplier.APPLIED + " "), said);

    // every cluster the source still references is identical; a cluster QEMU freed after the
    // copy (refcount 0) may keep stale bytes, which nothing reads: a reused cluster is rewritten
    assertEquals(List.of(), referencedClustersThatDiffer(src, copy));
    run("qemu-img", "check", "-q", copy.toString());
    run("qemu-img", "compare", "-q", src.toString(), copy.toString());

    // control: the same delta without its data ranges must leave the copy different
    DeltaPlan metadataOnly =
        new DeltaPlan(
            plan.ranges().stream().filter(r -> r.kind() == DeltaPlan.Kind.METADATA).toList(),
            plan.fileSize());
    try (InputStream in = DeltaStream.open(src, metadataOnly)) {
      assertEquals(0, DeltaApplier.run(control, in, new PrintStream(out), new PrintStream(err)));
    }
    assertTrue(!referencedClustersThatDiffer(src, control).isEmpty(), "the comparison can fail");
  }

  /** Clusters that differ between the files and have a non-zero refcount in {@code src}. */
  static List<Long> referencedClustersThatDiffer(Path src, Path copy) throws Exception {
    try (FileChannel a = FileChannel.open(src);
        FileChannel b = FileChannel.open(copy)) {
      ByteBuffer h = ByteBuffer.allocate(104);
      a.read(h, 0);
      int bits = h.getInt(20);
      long cluster = 1L << bits;
      int refcountOrder = h.getInt(96);
      assertEquals(4, refcountOrder, "test reads 16-bit refcounts only");
      long table = h.getLong(48);
      List<Long> differ = new ArrayList<>();
      long clusters = (a.size() + cluster - 1) / cluster;
      ByteBuffer ca = ByteBuffer.allocate((int) cluster);
      ByteBuffer cb = ByteBuffer.allocate((int) cluster);
      for (long c = 0; c < clusters; c++) {
        ca.clear();
        cb.clear();
        a.read(ca, c * cluster);
        b.read(cb, c * cluster);
        if (ca.flip().equals(cb.flip())) {
          continue;
        }
        long perBlock = cluster / 2;
        ByteBuffer e = ByteBuffer.allocate(8);
        a.read(e, table + (c / perBlock) * 8);
        long block = e.getLong(0);
        ByteBuffer r = ByteBuffer.allocate(2);
        a.read(r, block + (c % perBlock) * 2);
        if (block != 0 && r.getShort(0) != 0) {
          differ.add(c);
        }
      }
      return differ;
    }
  }

  @Test
  void aCutStreamIsRefusedAtTheEnd() throws Exception {
    Path src = dir.resolve("disk.0");
    run("qemu-img", "create", "-q", "-f", "qcow2", src.toString(), "64M");
    run("qemu-img", "bitmap", "--add", src.toString(), "b");
    Path copy = dir.resolve("copy");
    Files.copy(src, copy);
    io(src, "write -P 0x44 0 2M");
    DeltaPlan plan = Qcow2DeltaPlanner.plan(src, "b");
    byte[] stream;
    try (InputStream in = DeltaStream.open(src, plan)) {
      stream = in.readAllBytes();
    }
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    byte[] cut = Arrays.copyOf(stream, stream.length - 100);
    assertEquals(
        3,
        DeltaApplier.run(
            copy,
            new ByteArrayInputStream(cut),
            new PrintStream(new ByteArrayOutputStream()),
            new PrintStream(err)));
    assertTrue(err.toString(StandardCharsets.UTF_8).contains("ended early"));

    byte[] corrupt = stream.clone();
    corrupt[40] ^= 0x55; // a data byte of the first record
    assertEquals(
        3,
        DeltaApplier.run(
            copy,
            new ByteArrayInputStream(corrupt),
            new PrintStream(new ByteArrayOutputStream()),
            new PrintStream(err)));
    assertTrue(err.toString(StandardCharsets.UTF_8).contains("checksum mismatch"));
  }

  @Test
  void refusesWhatItCannotDoSafely() throws Exception {
    Path raw = dir.resolve("raw");
    Files.write(raw, new byte[1 << 20]);
    assertThrows(Qcow2Exception.class, () -> Qcow2DeltaPlanner.plan(raw, "b"));

    Path noBitmap = dir.resolve("nob.qcow2");
    run("qemu-img", "create", "-q", "-f", "qcow2", noBitmap.toString(), "64M");
    Qcow2Exception e =
        assertThrows(Qcow2Exception.class, () -> Qcow2DeltaPlanner.plan(noBitmap, "b"));
    assertEquals("dirty bitmap 'b' is not stored in the image", e.getMessage());

    Path extl2 = dir.resolve("extl2.qcow2");
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", extl2.toString(), "64M");
    assertThrows(Qcow2Exception.class, () -> Qcow2DeltaPlanner.plan(extl2, "b"));

    ByteArrayOutputStream err = new ByteArrayOutputStream();
    assertEquals(
        2,
        DeltaApplier.run(
            dir.resolve("missing"),
            new ByteArrayInputStream(new byte[0]),
            new PrintStream(new ByteArrayOutputStream()),
            new PrintStream(err)));
  }
}
