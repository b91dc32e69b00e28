package dev.ferry.protocol;

/**
 * Marker for every message that crosses the network between agents, the scheduler and the API.
 * {@code reference.conf} binds it to Jackson CBOR.
 */
public interface CborSerializable {}
