package dev.ferry.node.migration;

/**
 * The names of the persistent dirty bitmaps Ferry adds to a VM's images for the bitmap delta. A
 * bitmap of this shape that outlives its migration makes a later internal snapshot revert fail
 * ("Device has active dirty bitmaps") and QEMU stop the guest, so every verification looks for
 * them.
 */
public final class FerryBitmaps {
  private static final String PREFIX = "ferry-";

  private FerryBitmaps() {}

  /** The bitmap of migration {@code migrationId}. */
  public static String of(String migrationId) {
    return PREFIX + migrationId;
  }

  /** Whether {@code bitmap} is one Ferry added (of any migration). */
  public static boolean isFerrys(String bitmap) {
    return bitmap.startsWith(PREFIX);
  }
}
