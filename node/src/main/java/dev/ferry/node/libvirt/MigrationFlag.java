package dev.ferry.node.libvirt;

import org.libvirt.Domain;

/** The libvirt migration flags the engine uses, by name. */
public enum MigrationFlag {
  /** Keep the guest running during the memory copy. */
  LIVE(Domain.MigrateFlags.LIVE),
  /** The source libvirtd drives the migration and talks to the destination itself. */
  PEER2PEER(Domain.MigrateFlags.PEER2PEER),
  /** Define the domain persistently on the destination. */
  PERSIST_DEST(Domain.MigrateFlags.PERSIST_DEST),
  /** Undefine the domain on the source once the migration succeeded. */
  UNDEFINE_SOURCE(Domain.MigrateFlags.UNDEFINE_SOURCE),
  /** Leave the domain paused on the destination ({@code virsh migrate --suspend}). */
  PAUSED(Domain.MigrateFlags.PAUSED),
  /**
   * Migrate although libvirt thinks storage is not safe: our disks are local files that we copy
   * ourselves, which libvirt cannot know.
   */
  UNSAFE(Domain.MigrateFlags.UNSAFE),
  /** Mirror the top layer of each disk over NBD ({@code --copy-storage-inc}). */
  NON_SHARED_INC(Domain.MigrateFlags.NON_SHARED_INC),
  /** Mirror whole disks over NBD ({@code --copy-storage-all}). */
  NON_SHARED_DISK(Domain.MigrateFlags.NON_SHARED_DISK),
  /** Throttle vCPUs when memory does not converge. */
  AUTO_CONVERGE(Domain.MigrateFlags.AUTO_CONVERGE),
  /** Abort on I/O errors during the migration. */
  ABORT_ON_ERROR(Domain.MigrateFlags.ABORT_ON_ERROR);

  /**
   * How the domain's definition moves with it: a persistent domain is defined on the destination
   * and undefined here; a transient one (OpenNebula's, made by {@code virsh create}) stays
   * transient, so no definition is left on either host.
   */
  public static java.util.Set<MigrationFlag> definitionFlags(boolean transientDomain) {
    return transientDomain
        ? java.util.EnumSet.noneOf(MigrationFlag.class)
        : java.util.EnumSet.of(PERSIST_DEST, UNDEFINE_SOURCE);
  }

  /** {@code base} and {@code more}, as a new set. */
  public static java.util.EnumSet<MigrationFlag> with(
      java.util.Set<MigrationFlag> base, MigrationFlag... more) {
    java.util.EnumSet<MigrationFlag> all = java.util.EnumSet.noneOf(MigrationFlag.class);
    all.addAll(base);
    all.addAll(java.util.List.of(more));
    return all;
  }

  private final int bit;

  MigrationFlag(int bit) {
    this.bit = bit;
  }

  int bit() {
    return bit;
  }
}
