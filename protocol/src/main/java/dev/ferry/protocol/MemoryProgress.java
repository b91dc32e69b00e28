package dev.ferry.protocol;

/** libvirt's job statistics for the memory migration. */
public record MemoryProgress(
    long processed, long total, long remaining, long bytesPerSecond, long dirtyRate, long iteration)
    implements CborSerializable {

  public static MemoryProgress none() {
    return new MemoryProgress(0, 0, 0, 0, 0, 0);
  }
}
