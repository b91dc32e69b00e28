package dev.ferry.node.libvirt;

/** A domain as listed: name, identity, state and size. */
public record DomainSummary(
    String name, String uuid, DomainState state, boolean persistent, long memoryKiB, int vcpus) {}
