package dev.ferry.node.fakes;

import dev.ferry.node.image.CheckResult;
import dev.ferry.node.image.ImageFormat;
import dev.ferry.node.image.ImageInfo;
import dev.ferry.node.image.ImageSnapshot;
import dev.ferry.node.image.ImageTool;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * An in-memory {@link ImageTool} for unit tests. Images are shared by every host's instance unless
 * a host overrides an image's snapshot table (to simulate a bad copy) for a number of reads.
 */
public final class FakeImageTool implements ImageTool {
  private final Map<Path, List<ImageSnapshot>> tables;
  private final Map<Path, List<ImageSnapshot>> wrongTables = new ConcurrentHashMap<>();
  private final Map<Path, Integer> wrongReads = new ConcurrentHashMap<>();
  public final List<String> calls = new CopyOnWriteArrayList<>();

  /** Backing file of an image, as its header names it (none unless a test sets one). */
  public final Map<Path, Path> backing = new ConcurrentHashMap<>();

  /** Persistent dirty bitmaps in this host's copy of an image (none unless a test puts some). */
  public final Map<Path, List<String>> bitmaps = new ConcurrentHashMap<>();

  public FakeImageTool(Map<Path, List<ImageSnapshot>> shared) {
    this.tables = shared;
  }

  /** The next {@code reads} infos of {@code image} on this host show {@code table}. */
  public void misreport(Path image, List<ImageSnapshot> table, int reads) {
    wrongTables.put(image, table);
    wrongReads.put(image, reads);
  }

  @Override
  public ImageInfo info(Path image, Access access) {
    calls.add("info " + image);
    List<ImageSnapshot> table = tables.getOrDefault(image, List.of());
    Integer left = wrongReads.get(image);
    if (left != null && left > 0) {
      wrongReads.put(image, left - 1);
      table = wrongTables.get(image);
    }
    boolean raw = image.toString().endsWith(".raw");
    return new ImageInfo(
        image.toString(),
        raw ? ImageFormat.RAW : ImageFormat.QCOW2,
        1L << 30,
        1L << 20,
        raw ? Optional.empty() : Optional.of(65536L),
        Optional.empty(),
        table,
        bitmaps.getOrDefault(image, List.of()),
        raw ? Optional.empty() : Optional.of("1.1"),
        false);
  }

  @Override
  public List<ImageInfo> chain(Path image, Access access) {
    List<ImageInfo> chain = new ArrayList<>(List.of(info(image, access)));
    for (Path b = backing.get(image); b != null; b = backing.get(b)) {
      chain.add(info(b, access));
    }
    return chain;
  }

  @Override
  public CheckResult check(Path image, Access access) {
    calls.add("check " + image);
    return new CheckResult(true, 0, 0, 0, 10, 100);
  }

  @Override
  public void removeBitmap(Path image, String bitmap) {
    calls.add("remove-bitmap " + image + " " + bitmap);
    bitmaps.computeIfPresent(
        image, (i, names) -> names.stream().filter(n -> !n.equals(bitmap)).toList());
  }

  @Override
  public void create(Path image, ImageFormat format, long virtualSize, Optional<Backing> backing) {
    calls.add("create " + image);
  }
}
