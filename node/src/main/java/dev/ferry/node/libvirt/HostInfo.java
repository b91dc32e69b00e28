package dev.ferry.node.libvirt;

/** The hypervisor host as libvirt sees it. */
public record HostInfo(
    String hostname, long memoryKiB, long freeMemoryBytes, int cpus, long libvirtVersion) {}
