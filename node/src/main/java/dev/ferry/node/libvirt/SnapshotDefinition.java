package dev.ferry.node.libvirt;

import java.util.Optional;

/**
 * A libvirt snapshot's metadata: the XML libvirt needs to redefine it, and the fields to order it.
 *
 * @param name snapshot name
 * @param parent parent snapshot, if any
 * @param state domain state recorded ({@code running}, {@code shutoff}, {@code disk-snapshot})
 * @param creationTime seconds since the epoch
 * @param xml {@code virsh snapshot-dumpxml} output, secure fields included
 */
public record SnapshotDefinition(
    String name, Optional<String> parent, String state, long creationTime, String xml) {}
