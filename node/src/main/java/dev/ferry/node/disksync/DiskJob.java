package dev.ferry.node.disksync;

import java.nio.file.Path;
import java.util.Optional;

/**
 * One disk to move.
 *
 * @param target guest device, for messages
 * @param path the file, at the same path on both hosts
 * @param destination destination host
 * @param bytes bytes a sparse copy moves (allocated size)
 * @param bitmap the persistent dirty bitmap for the delta final sync, if this disk uses it
 * @param bulkWithRsync bulk copy with rsync instead of tar
 * @param warmPasses rsync --inplace passes after the bulk copy while the VM runs
 * @param bytesPerSecond this disk's share of the bandwidth; 0 = unlimited
 */
public record DiskJob(
    String target,
    Path path,
    String destination,
    long bytes,
    Optional<String> bitmap,
    boolean bulkWithRsync,
    int warmPasses,
    long bytesPerSecond) {}
