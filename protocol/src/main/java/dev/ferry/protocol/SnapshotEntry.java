package dev.ferry.protocol;

/**
 * One row of a qcow2 internal snapshot table as {@code qemu-img info} reports it. The destination
 * must show exactly these rows for the migration to be acknowledged.
 */
public record SnapshotEntry(
    String id,
    String name,
    long vmStateSize,
    long dateSec,
    long dateNsec,
    long vmClockSec,
    long vmClockNsec)
    implements CborSerializable {}
