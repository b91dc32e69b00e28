package dev.ferry.node.image;

/**
 * What {@code qemu-img check --output=json} found.
 *
 * @param supported false for formats without consistency checks (raw)
 * @param checkErrors errors that prevented the check itself
 * @param corruptions corrupted metadata
 * @param leaks leaked clusters (harmless for data, but not "clean")
 * @param allocatedClusters clusters in use
 * @param totalClusters clusters the virtual size spans
 */
public record CheckResult(
    boolean supported,
    long checkErrors,
    long corruptions,
    long leaks,
    long allocatedClusters,
    long totalClusters) {

  public static CheckResult notSupported() {
    return new CheckResult(false, 0, 0, 0, 0, 0);
  }

  /** No errors, corruptions or leaks (or nothing to check). */
  public boolean clean() {
    return checkErrors == 0 && corruptions == 0 && leaks == 0;
  }

  public String describe() {
    if (!supported) {
      return "no consistency check for this format";
    }
    return clean()
        ? "clean (" + allocatedClusters + "/" + totalClusters + " clusters allocated)"
        : "errors=" + checkErrors + " corruptions=" + corruptions + " leaks=" + leaks;
  }
}
