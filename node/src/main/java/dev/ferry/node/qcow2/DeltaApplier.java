package dev.ferry.node.qcow2;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * Applies a {@link DeltaStream} to a file in place: positional writes into the existing inode (the
 * paused destination QEMU already has it open, so the file must never be replaced), then the final
 * length, then fsync. The source agent starts it on the destination over ssh before the switchover,
 * so no JVM starts inside the paused window; it prints {@code READY} once the file is open and
 * {@code APPLIED <ranges> <bytes>} at the end. Plain JDK only, for a fast start.
 *
 * <p>Exit codes: 0 applied, 2 usage or file error, 3 stream cut or corrupt (checksum mismatch; the
 * file may be partly written, the caller must sync again).
 */
public final class DeltaApplier {
  public static final String READY = "READY";
  public static final String APPLIED = "APPLIED";

  private DeltaApplier() {}

  public static void main(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: DeltaApplier FILE   (delta stream on stdin)");
      System.exit(2);
    }
    System.exit(run(Path.of(args[0]), System.in, System.out, System.err));
  }

  /**
   * Runs the decoding path on a dummy stream before READY, so the JVM has loaded and compiled it
   * before the real stream arrives inside the paused window.
   */
  static void warmUp() throws IOException {
    java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
    java.io.DataOutputStream w = new java.io.DataOutputStream(buf);
    byte[] block = new byte[64 * 1024];
    for (int i = 0; i < 64; i++) {
      w.writeLong(i * (long) block.length);
      w.writeInt(block.length);
      w.write(block);
    }
    for (int round = 0; round < 4; round++) {
      DataInputStream in =
          new DataInputStream(
              new BufferedInputStream(
                  new java.io.ByteArrayInputStream(buf.toByteArray()), 1 << 20));
      CRC32C crc = new CRC32C();
      for (int i = 0; i < 64; i++) {
        ByteBuffer header =
            ByteBuffer.allocate(12).putLong(in.readLong()).putInt(in.readInt()).flip();
        crc.update(header);
        in.readFully(block);
        crc.update(block, 0, block.length);
      }
    }
  }

  /** Applies the stream on {@code in} to {@code file}; returns the exit code. */
  public static int run(Path file, InputStream in, PrintStream out, PrintStream err) {
    if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
      // never create a file: the bulk copy made it, and QEMU has that inode open
      err.println("DeltaApplier: " + file + " is not an existing regular file");
      return 2;
    }
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      // flush what the bulk copy left in the page cache now, while the VM still runs on the
      // source: the fsync at the end then only has the delta to write, inside the paused window
      ch.force(false);
      warmUp();
      out.println(READY);
      out.flush();
      DataInputStream data = new DataInputStream(new BufferedInputStream(in, 1 << 20));
      CRC32C digest = new CRC32C();
      byte[] head = new byte[DeltaStream.MAGIC.length + 4];
      data.readFully(head);
      digest.update(head);
      if (!Arrays.equals(Arrays.copyOf(head, DeltaStream.MAGIC.length), DeltaStream.MAGIC)
          || ByteBuffer.wrap(head, DeltaStream.MAGIC.length, 4).getInt() != DeltaStream.VERSION) {
        err.println("DeltaApplier: not a delta stream (version " + DeltaStream.VERSION + ")");
        return 3;
      }
      long ranges = 0;
      long bytes = 0;
      byte[] buf = new byte[DeltaStream.MAX_RECORD];
      while (true) {
        long offset = data.readLong();
        if (offset == DeltaStream.END) {
          long size = data.readLong();
          int expected = data.readInt();
          if (expected != (int) digest.getValue()) {
            err.println("DeltaApplier: checksum mismatch: the stream was corrupted");
            return 3;
          }
          ch.truncate(size);
          if (ch.size() < size) {
            ch.write(ByteBuffer.allocate(1), size - 1); // extend a copy shorter than the source
          }
          ch.force(true);
          out.println(APPLIED + " " + ranges + " " + bytes);
          out.flush();
          return 0;
        }
        int length = data.readInt();
        if (offset < 0 || length < 0 || length > buf.length) {
          err.println("DeltaApplier: bad record at offset " + offset + " length " + length);
          return 3;
        }
        data.readFully(buf, 0, length);
        ByteBuffer header = ByteBuffer.allocate(12).putLong(offset).putInt(length).flip();
        digest.update(header);
        digest.update(buf, 0, length);
        ByteBuffer chunk = ByteBuffer.wrap(buf, 0, length);
        long pos = offset;
        while (chunk.hasRemaining()) {
          pos += ch.write(chunk, pos);
        }
        ranges++;
        bytes += length;
      }
    } catch (EOFException e) {
      err.println("DeltaApplier: the stream ended early: the sender died or the link broke");
      return 3;
    } catch (IOException e) {
      err.println("DeltaApplier: " + e.getMessage());
      return 2;
    }
  }
}
