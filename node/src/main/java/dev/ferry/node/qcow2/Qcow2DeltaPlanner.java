package dev.ferry.node.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Computes a {@link DeltaPlan} from a qcow2 file that no QEMU writes to any more (the source's
 * final file after the migration completed) and a persistent dirty bitmap stored in it.
 *
 * <p>Why this is correct (docs/final-sync.md): a hot copy of a qcow2 file is not consistent by
 * itself. QEMU's write-back metadata cache may hold L2 and refcount updates for data already in the
 * file, and those guest writes happened before the bitmap existed, so the bitmap does not know
 * them. Sending every metadata cluster of the final file fixes exactly that, and the host clusters
 * behind dirty guest ranges carry what the guest wrote since the bitmap was added. Clean data
 * clusters, snapshot-only data and VM state never change once written and are not sent.
 *
 * <p>Refused (a caller falls back to rsync): qcow2 v1, external data files, extended L2 entries,
 * compressed clusters, a missing bitmap.
 */
public final class Qcow2DeltaPlanner {
  private static final int MAGIC = 0x514649fb;
  private static final long OFFSET_MASK = 0x00fffffffffffe00L;
  private static final long COMPRESSED = 1L << 62;
  private static final int EXT_END = 0;
  private static final int EXT_BITMAPS = 0x23852875;

  /** incompatible feature bits: 2 = external data file, 4 = extended L2 entries */
  private static final long INCOMPAT_DATA_FILE = 1L << 2;

  private static final long INCOMPAT_EXTL2 = 1L << 4;
  private static final int SNAPSHOT_HEADER = 40;
  private static final int BITMAP_ENTRY_HEADER = 24;

  private final FileChannel file;
  private final long fileSize;
  private int clusterBits;
  private long clusterSize;
  private long virtualSize;
  private final BitSet metadata = new BitSet();
  private final BitSet data = new BitSet();

  private Qcow2DeltaPlanner(FileChannel file) throws IOException {
    this.file = file;
    this.fileSize = file.size();
  }

  /** The plan for {@code image} and the bitmap named {@code bitmap} stored in it. */
  public static DeltaPlan plan(Path image, String bitmap) throws IOException {
    try (FileChannel ch = FileChannel.open(image, StandardOpenOption.READ)) {
      return new Qcow2DeltaPlanner(ch).compute(bitmap);
    }
  }

  private DeltaPlan compute(String bitmapName) throws IOException {
    ByteBuffer h = read(0, 4096);
    if (h.getInt(0) != MAGIC) {
      throw new Qcow2Exception("not a qcow2 file");
    }
    int version = h.getInt(4);
    if (version < 2) {
      throw new Qcow2Exception("qcow2 version " + version + " is not supported");
    }
    clusterBits = h.getInt(20);
    clusterSize = 1L << clusterBits;
    virtualSize = h.getLong(24);
    int l1Size = h.getInt(36);
    long l1Offset = h.getLong(40);
    long refcountTableOffset = h.getLong(48);
    int refcountTableClusters = h.getInt(56);
    int nbSnapshots = h.getInt(60);
    long snapshotsOffset = h.getLong(64);
    int headerLength = 72;
    if (version >= 3) {
      long incompatible = h.getLong(72);
      if ((incompatible & INCOMPAT_DATA_FILE) != 0) {
        throw new Qcow2Exception("external data files are not supported");
      }
      if ((incompatible & INCOMPAT_EXTL2) != 0) {
        throw new Qcow2Exception("extended L2 entries are not supported");
      }
      headerLength = h.getInt(100);
    }
    if (clusterSize < 512 || clusterSize > (2 << 20)) {
      throw new Qcow2Exception("implausible cluster size " + clusterSize);
    }
    h = read(0, (int) clusterSize); // header extensions may use the whole first cluster

    mark(metadata, 0, clusterSize); // header and header extensions
    long[] activeL2 = l1Tables(l1Offset, l1Size);
    refcounts(refcountTableOffset, refcountTableClusters);
    snapshotTables(snapshotsOffset, nbSnapshots);
    BitSet dirty = bitmaps(h, headerLength, bitmapName);
    dirtyData(dirty, activeL2);
    return new DeltaPlan(ranges(), fileSize);
  }

  /** Marks an L1 table and every L2 table it points to; returns the L2 offsets. */
  private long[] l1Tables(long l1Offset, int l1Size) throws IOException {
    mark(metadata, l1Offset, (long) l1Size * 8);
    ByteBuffer l1 = read(l1Offset, l1Size * 8);
    long[] l2 = new long[l1Size];
    for (int i = 0; i < l1Size; i++) {
      long entry = l1.getLong(i * 8) & OFFSET_MASK;
      if (entry != 0) {
        mark(metadata, entry, clusterSize);
      }
      l2[i] = entry;
    }
    return l2;
  }

  private void refcounts(long tableOffset, int tableClusters) throws IOException {
    long tableBytes = tableClusters * clusterSize;
    mark(metadata, tableOffset, tableBytes);
    ByteBuffer table = read(tableOffset, (int) Math.min(tableBytes, fileSize - tableOffset));
    for (int i = 0; i + 8 <= table.limit(); i += 8) {
      long block = table.getLong(i) & ~(clusterSize - 1);
      if (block != 0) {
        mark(metadata, block, clusterSize);
      }
    }
  }

  private void snapshotTables(long offset, int count) throws IOException {
    long pos = offset;
    for (int i = 0; i < count; i++) {
      ByteBuffer s = read(pos, SNAPSHOT_HEADER);
      long l1Offset = s.getLong(0);
      int l1Size = s.getInt(8);
      int idLength = Short.toUnsignedInt(s.getShort(12));
      int nameLength = Short.toUnsignedInt(s.getShort(14));
      int extra = s.getInt(36);
      l1Tables(l1Offset, l1Size);
      pos += align8(SNAPSHOT_HEADER + extra + idLength + nameLength);
    }
    if (count > 0) {
      mark(metadata, offset, pos - offset);
    }
  }

  /** Marks bitmap structures as metadata and returns the dirty chunks of the named bitmap. */
  private BitSet bitmaps(ByteBuffer header, int headerLength, String wanted) throws IOException {
    long ext = headerLength;
    BitSet found = null;
    while (ext + 8 <= clusterSize && ext + 8 <= header.limit()) {
      int type = header.getInt((int) ext);
      int length = header.getInt((int) ext + 4);
      if (type == EXT_END) {
        break;
      }
      if (type == EXT_BITMAPS) {
        int count = header.getInt((int) ext + 8);
        long dirSize = header.getLong((int) ext + 16);
        long dirOffset = header.getLong((int) ext + 24);
        mark(metadata, dirOffset, dirSize);
        ByteBuffer dir = read(dirOffset, (int) dirSize);
        int p = 0;
        for (int i = 0; i < count; i++) {
          long tableOffset = dir.getLong(p);
          int tableSize = dir.getInt(p + 8);
          int granularityBits = Byte.toUnsignedInt(dir.get(p + 17));
          int nameSize = Short.toUnsignedInt(dir.getShort(p + 18));
          int extra = dir.getInt(p + 20);
          byte[] name = new byte[nameSize];
          dir.get(p + BITMAP_ENTRY_HEADER + extra, name);
          BitSet bits = bitmapTable(tableOffset, tableSize, granularityBits);
          if (new String(name, StandardCharsets.UTF_8).equals(wanted)) {
            found = bits;
          }
          p += (int) align8(BITMAP_ENTRY_HEADER + extra + nameSize);
        }
      }
      ext += 8 + align8(length);
    }
    if (found == null) {
      throw new Qcow2Exception("dirty bitmap '" + wanted + "' is not stored in the image");
    }
    return found;
  }

  /**
   * Reads one bitmap's table and data clusters (marking them metadata) and returns dirty guest
   * chunks as one bit per {@code 2^granularityBits} bytes, expanded to guest clusters.
   */
  private BitSet bitmapTable(long tableOffset, int tableSize, int granularityBits)
      throws IOException {
    mark(metadata, tableOffset, (long) tableSize * 8);
    ByteBuffer table = read(tableOffset, tableSize * 8);
    long granularity = 1L << granularityBits;
    long bitsPerCluster = clusterSize * 8;
    BitSet dirtyClusters = new BitSet();
    for (int t = 0; t < tableSize; t++) {
      long entry = table.getLong(t * 8);
      long offset = entry & OFFSET_MASK;
      long firstChunk = t * bitsPerCluster;
      if (offset != 0) {
        mark(metadata, offset, clusterSize);
        ByteBuffer bits = read(offset, (int) clusterSize);
        for (int byteIndex = 0; byteIndex < clusterSize; byteIndex++) {
          int b = Byte.toUnsignedInt(bits.get(byteIndex));
          if (b == 0) {
            continue;
          }
          for (int bit = 0; bit < 8; bit++) {
            if ((b & (1 << bit)) != 0) {
              markChunk(dirtyClusters, firstChunk + byteIndex * 8L + bit, granularity);
            }
          }
        }
      } else if ((entry & 1) != 0) { // "all ones": every chunk of this table entry is dirty
        for (long c = 0; c < bitsPerCluster; c++) {
          markChunk(dirtyClusters, firstChunk + c, granularity);
        }
      }
    }
    return dirtyClusters;
  }

  private void markChunk(BitSet dirtyGuestClusters, long chunk, long granularity) {
    long start = chunk * granularity;
    if (start >= virtualSize) {
      return;
    }
    long end = Math.min(virtualSize, start + granularity);
    dirtyGuestClusters.set(
        (int) (start >>> clusterBits), (int) ((end + clusterSize - 1) >>> clusterBits));
  }

  /** Host clusters behind dirty guest clusters, looked up in the final active L2 tables. */
  private void dirtyData(BitSet dirtyGuestClusters, long[] activeL2) throws IOException {
    long entriesPerL2 = clusterSize / 8;
    Map<Long, ByteBuffer> cache = new HashMap<>();
    for (int g = dirtyGuestClusters.nextSetBit(0);
        g >= 0;
        g = dirtyGuestClusters.nextSetBit(g + 1)) {
      int l1Index = (int) (g / entriesPerL2);
      int l2Index = (int) (g % entriesPerL2);
      if (l1Index >= activeL2.length || activeL2[l1Index] == 0) {
        continue; // unallocated: reads as zero, and the L1/L2 metadata already says so
      }
      long l2 = activeL2[l1Index];
      ByteBuffer table = cache.get(l2);
      if (table == null) {
        table = read(l2, (int) clusterSize);
        cache.put(l2, table);
      }
      long entry = table.getLong(l2Index * 8);
      if ((entry & COMPRESSED) != 0) {
        throw new Qcow2Exception("compressed clusters are not supported");
      }
      long host = entry & OFFSET_MASK;
      if (host != 0) {
        mark(data, host, clusterSize);
      }
    }
  }

  private List<DeltaPlan.Range> ranges() {
    BitSet all = (BitSet) metadata.clone();
    all.or(data);
    List<DeltaPlan.Range> out = new ArrayList<>();
    for (int c = all.nextSetBit(0); c >= 0; c = all.nextSetBit(c + 1)) {
      long offset = (long) c << clusterBits;
      if (offset >= fileSize) {
        break;
      }
      long length = Math.min(clusterSize, fileSize - offset);
      DeltaPlan.Kind kind = metadata.get(c) ? DeltaPlan.Kind.METADATA : DeltaPlan.Kind.DATA;
      if (!out.isEmpty()) {
        DeltaPlan.Range last = out.get(out.size() - 1);
        if (last.offset() + last.length() == offset && last.kind() == kind) {
          out.set(out.size() - 1, new DeltaPlan.Range(last.offset(), last.length() + length, kind));
          continue;
        }
      }
      out.add(new DeltaPlan.Range(offset, length, kind));
    }
    return out;
  }

  private void mark(BitSet set, long offset, long length) {
    if (length <= 0) {
      return;
    }
    long first = offset >>> clusterBits;
    long last = (offset + length - 1) >>> clusterBits;
    if (last > Integer.MAX_VALUE) {
      throw new Qcow2Exception("image too large for this planner");
    }
    set.set((int) first, (int) last + 1);
  }

  private ByteBuffer read(long offset, int length) throws IOException {
    if (offset < 0 || offset + length > fileSize + clusterSize) {
      throw new Qcow2Exception(
          "structure at " + offset + "+" + length + " lies beyond the file end " + fileSize);
    }
    ByteBuffer b = ByteBuffer.allocate(length);
    while (b.hasRemaining()) {
      if (file.read(b, offset + b.position()) < 0) {
        break; // short read at the end of the file: the rest stays zero, as QEMU reads it
      }
    }
    b.clear();
    return b;
  }

  private static long align8(long n) {
    return (n + 7) & ~7L;
  }
}
