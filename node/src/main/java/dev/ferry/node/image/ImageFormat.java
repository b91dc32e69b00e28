package dev.ferry.node.image;

import java.util.Locale;

/** Disk image formats the engine handles. */
public enum ImageFormat {
  QCOW2,
  RAW;

  /** The name qemu-img and libvirt use. */
  public String qemuName() {
    return name().toLowerCase(Locale.ROOT);
  }

  public static ImageFormat fromQemuName(String name) {
    return switch (name) {
      case "qcow2" -> QCOW2;
      case "raw" -> RAW;
      default -> throw new IllegalArgumentException("unsupported image format: " + name);
    };
  }
}
