package dev.ferry.node.image;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/** Reads and checks disk images (the real adapter runs {@code qemu-img}). Blocking calls. */
public interface ImageTool {

  /**
   * How to open an image. {@link #SHARED} ({@code -U}) reads an image a running QEMU holds locked;
   * the answer may then lag behind QEMU's cached metadata. {@link #EXCLUSIVE} takes the lock and
   * fails if a running QEMU holds the image.
   */
  enum Access {
    SHARED,
    EXCLUSIVE
  }

  ImageInfo info(Path image, Access access);

  /** The image and its backing files, top first ({@code --backing-chain}). */
  List<ImageInfo> chain(Path image, Access access);

  /** Consistency check. Run it on an image nothing writes to, or leaks show up in flight. */
  CheckResult check(Path image, Access access);

  /** Removes a persistent dirty bitmap from an image no QEMU has active. */
  void removeBitmap(Path image, String bitmap);

  /** Creates an image, optionally on top of a backing file. */
  void create(Path image, ImageFormat format, long virtualSize, Optional<Backing> backing);

  /** A backing file for {@link #create}. */
  record Backing(String file, ImageFormat format) {}
}
