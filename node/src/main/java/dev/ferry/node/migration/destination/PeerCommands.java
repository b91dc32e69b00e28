package dev.ferry.node.migration.destination;

import dev.ferry.node.libvirt.DiskDefinition;
import dev.ferry.node.libvirt.DomainDefinition;
import dev.ferry.node.libvirt.DomainXml;
import dev.ferry.node.migration.FerryBitmaps;
import dev.ferry.node.migration.overlay.OverlayOps;
import dev.ferry.protocol.DestinationProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * What the source may ask of this destination, checked against the manifest before any state of the
 * migration sees the command: a peer is trusted no more than an API client. The manifest itself was
 * confined to the datastores when the migration was accepted here; every path, name and host in a
 * later command must be one the manifest already names.
 */
final class PeerCommands {
  private PeerCommands() {}

  /** Why {@code command} is refused, or empty if it is acceptable. */
  static Optional<String> refusal(Manifest m, DestinationProtocol.Command command) {
    if (command instanceof DestinationProtocol.CreateOverlays c) {
      return overlays(m, c.overlays());
    }
    if (command instanceof DestinationProtocol.MergeOverlays c) {
      return overlays(m, c.overlays());
    }
    if (command instanceof DestinationProtocol.StartCold c) {
      return domainXml(m, c.domainXml());
    }
    if (command instanceof DestinationProtocol.MigrateBack c) {
      return c.sourceHost().equals(m.sourceHost())
          ? Optional.empty()
          : Optional.of(
              "migrate back to '" + c.sourceHost() + "': the VM came from " + m.sourceHost());
    }
    if (command instanceof DestinationProtocol.FinalSynced c) {
      for (DestinationProtocol.DiskBitmap b : c.bitmaps()) {
        boolean known = m.disks().stream().anyMatch(d -> d.path().equals(b.path()));
        if (!known || !b.bitmap().equals(FerryBitmaps.of(m.migrationId()))) {
          return Optional.of(
              "bitmap " + b.bitmap() + " on " + b.path() + " is not this migration's");
        }
      }
    }
    return Optional.empty();
  }

  /** The overlays must be exactly the ones this migration plans (names, paths, bases). */
  private static Optional<String> overlays(
      Manifest m, List<DestinationProtocol.OverlaySpec> specs) {
    return specs.equals(OverlayOps.plan(m))
        ? Optional.empty()
        : Optional.of("overlays " + specs + " are not the ones planned for this migration");
  }

  /**
   * The cold move's definition: this VM (name and UUID), on exactly the manifest's disk files, with
   * no state outside them.
   */
  private static Optional<String> domainXml(Manifest m, String xml) {
    DomainDefinition def;
    try {
      def = DomainXml.parseDomain(xml);
    } catch (RuntimeException e) {
      return Optional.of("the domain XML does not parse: " + e.getMessage());
    }
    if (!def.name().equals(m.vm()) || !def.uuid().equals(m.uuid())) {
      return Optional.of(
          "the domain XML is of " + def.name() + " (" + def.uuid() + "), not of " + m.vm());
    }
    Set<String> files = new TreeSet<>();
    for (DiskDefinition d : def.disks()) {
      d.sourceFile().ifPresent(files::add);
      if (d.sourceFile().isEmpty() && !"file".equals(d.sourceType())) {
        return Optional.of("disk " + d.target() + " of the domain XML is not a file");
      }
    }
    Set<String> expected = new TreeSet<>();
    m.disks().stream().map(ManifestDisk::path).forEach(expected::add);
    if (!files.equals(expected)) {
      return Optional.of(
          "the domain XML's disks " + files + " are not the migration's " + expected);
    }
    List<String> outside = DomainXml.stateOutsideDisks(xml);
    return outside.isEmpty()
        ? Optional.empty()
        : Optional.of("the domain XML keeps " + String.join(" and ", outside));
  }
}
