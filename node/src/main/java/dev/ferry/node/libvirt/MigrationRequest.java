package dev.ferry.node.libvirt;

import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;

/**
 * A memory migration as {@code virDomainMigrateToURI3} takes it.
 *
 * @param destinationUri libvirt URI of the destination ({@code qemu+ssh://host2/system})
 * @param flags what kind of migration
 * @param bandwidthMiBps bandwidth cap in MiB/s
 * @param migrateDisks with {@link MigrationFlag#NON_SHARED_INC}: the disk targets to mirror
 */
public record MigrationRequest(
    String destinationUri,
    Set<MigrationFlag> flags,
    OptionalLong bandwidthMiBps,
    List<String> migrateDisks,
    Optional<String> destinationXml) {

  public MigrationRequest {
    flags = flags.isEmpty() ? EnumSet.noneOf(MigrationFlag.class) : EnumSet.copyOf(flags);
    migrateDisks = List.copyOf(migrateDisks);
  }
}
