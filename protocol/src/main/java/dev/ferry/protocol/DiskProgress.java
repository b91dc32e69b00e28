package dev.ferry.protocol;

/** Progress of one disk's copy. {@code method} says what is moving the bytes right now. */
public record DiskProgress(
    String target, String path, String method, long bytesDone, long bytesTotal)
    implements CborSerializable {}
