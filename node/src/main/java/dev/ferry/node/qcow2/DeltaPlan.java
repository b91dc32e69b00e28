package dev.ferry.node.qcow2;

import java.util.List;

/**
 * What to send so that a copy of a qcow2 file taken after the dirty bitmap was created becomes
 * byte-identical to the source's final file: byte ranges of the source file, and its final length.
 *
 * @param ranges sorted, non-overlapping, adjacent ranges of the same kind merged
 * @param fileSize the source file's length (the copy is truncated or extended to it)
 */
public record DeltaPlan(List<Range> ranges, long fileSize) {

  /** A byte range of the source file. */
  public record Range(long offset, long length, Kind kind) {}

  /** Why a range is sent. */
  public enum Kind {
    /** header, L1/L2, refcounts, snapshot table and tables, bitmap structures */
    METADATA,
    /** host clusters behind guest ranges the bitmap marks dirty */
    DATA
  }

  public DeltaPlan {
    ranges = List.copyOf(ranges);
  }

  public long bytes() {
    return ranges.stream().mapToLong(Range::length).sum();
  }

  public long bytes(Kind kind) {
    return ranges.stream().filter(r -> r.kind() == kind).mapToLong(Range::length).sum();
  }
}
