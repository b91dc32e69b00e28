package dev.ferry.node.qcow2;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.zip.CRC32C;

/**
 * The wire format of a delta, produced lazily as an {@link InputStream} so that a stream stage can
 * throttle and count it. Big-endian:
 *
 * <pre>
 *   "FERRYDLT" u32 version=1
 *   repeated: u64 offset, u32 length, length bytes of the source file at offset
 *   u64 0xffffffffffffffff, u64 final file size, u32 CRC32C of everything before this
 * </pre>
 *
 * The trailer lets {@link DeltaApplier} tell a complete stream from a cut or garbled one. ssh
 * already authenticates the bytes, so a checksum is enough; CRC32C is computed by a CPU instruction
 * even in a JVM that has not compiled anything yet, which matters inside the paused window (SHA-256
 * in the interpreter cost 100-200 ms per side there).
 */
public final class DeltaStream extends InputStream {
  static final byte[] MAGIC = "FERRYDLT".getBytes(StandardCharsets.US_ASCII);
  static final int VERSION = 2;
  static final long END = -1L;

  /** Ranges are cut into records of at most this many bytes. */
  static final int MAX_RECORD = 1 << 20;

  private final FileChannel source;
  private final DeltaPlan plan;
  private final Iterator<DeltaPlan.Range> ranges;
  private final CRC32C digest = new CRC32C();
  private ByteBuffer pending;
  private DeltaPlan.Range current;
  private long currentDone;
  private boolean trailerWritten;

  private DeltaStream(FileChannel source, DeltaPlan plan) {
    this.source = source;
    this.plan = plan;
    this.ranges = plan.ranges().iterator();
    ByteBuffer head = ByteBuffer.allocate(MAGIC.length + 4);
    head.put(MAGIC).putInt(VERSION).flip();
    this.pending = hashed(head);
  }

  /** A stream of {@code plan} applied to the bytes of {@code sourceFile}. */
  public static DeltaStream open(Path sourceFile, DeltaPlan plan) throws IOException {
    return new DeltaStream(FileChannel.open(sourceFile, StandardOpenOption.READ), plan);
  }

  /** Bytes this stream will produce in all. */
  public static long encodedSize(DeltaPlan plan) {
    long records = 0;
    for (DeltaPlan.Range r : plan.ranges()) {
      records += (r.length() + MAX_RECORD - 1) / MAX_RECORD;
    }
    return MAGIC.length + 4 + records * 12 + plan.bytes() + 8 + 8 + 4;
  }

  @Override
  public int read() throws IOException {
    byte[] one = new byte[1];
    int n = read(one, 0, 1);
    return n < 0 ? -1 : Byte.toUnsignedInt(one[0]);
  }

  @Override
  public int read(byte[] b, int off, int len) throws IOException {
    if (len == 0) {
      return 0;
    }
    while (pending == null || !pending.hasRemaining()) {
      if (!advance()) {
        return -1;
      }
    }
    int n = Math.min(len, pending.remaining());
    pending.get(b, off, n);
    return n;
  }

  /** Prepares the next piece: a record header, record data, or the trailer. */
  private boolean advance() throws IOException {
    if (current != null && currentDone < current.length()) {
      int length = (int) Math.min(MAX_RECORD, current.length() - currentDone);
      long offset = current.offset() + currentDone;
      ByteBuffer record = ByteBuffer.allocate(12 + length);
      record.putLong(offset).putInt(length);
      while (record.hasRemaining()) {
        int r = source.read(record, offset + record.position() - 12);
        if (r < 0) {
          throw new IOException("source file shrank while reading the delta at " + offset);
        }
      }
      record.flip();
      currentDone += length;
      pending = hashed(record);
      return true;
    }
    if (ranges.hasNext()) {
      current = ranges.next();
      currentDone = 0;
      return advance();
    }
    if (!trailerWritten) {
      trailerWritten = true;
      ByteBuffer end = ByteBuffer.allocate(16 + 4);
      end.putLong(END).putLong(plan.fileSize()).putInt((int) digest.getValue()).flip();
      pending = end;
      return true;
    }
    return false;
  }

  private ByteBuffer hashed(ByteBuffer b) {
    digest.update(b.duplicate());
    return b;
  }

  @Override
  public void close() throws IOException {
    source.close();
  }
}
