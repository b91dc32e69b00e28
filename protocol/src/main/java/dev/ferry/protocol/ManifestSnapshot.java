package dev.ferry.protocol;

/** A libvirt snapshot's metadata, saved before it is dropped for the migration. */
public record ManifestSnapshot(String name, String parent, String xml)
    implements CborSerializable {}
