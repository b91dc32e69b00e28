package dev.ferry.node.image;

/**
 * One entry of a qcow2 internal snapshot table, as {@code qemu-img info} reports it. Two tables are
 * equal only if every field is: that is what proves a snapshot arrived intact.
 */
public record ImageSnapshot(
    String id,
    String name,
    long vmStateSize,
    long dateSec,
    long dateNsec,
    long vmClockSec,
    long vmClockNsec) {}
