package dev.ferry.protocol;

/**
 * How one disk moved. {@code finalSyncMethod} is what actually ran (with the reason for a
 * fallback).
 */
public record DiskResult(
    String target,
    String path,
    String bulkMethod,
    String finalSyncMethod,
    long bulkBytes,
    long finalSyncBytes)
    implements CborSerializable {}
