package dev.ferry.node.fakes;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Fake hypervisor hosts that can migrate domains to each other, for unit tests. */
public final class FakeCloud {
  private final Map<String, FakeHypervisor> hosts = new ConcurrentHashMap<>();

  public FakeHypervisor host(String name) {
    return hosts.computeIfAbsent(name, n -> new FakeHypervisor(n, this));
  }

  /** A definition of the domain on any host, as a copied-over XML would carry it. */
  java.util.Optional<dev.ferry.node.libvirt.DomainDefinition> definitionOf(String domain) {
    return hosts.values().stream()
        .map(h -> h.domains.get(domain))
        .filter(java.util.Objects::nonNull)
        .map(d -> d.definition)
        .findFirst();
  }

  /** The host named in a libvirt URI such as {@code qemu+ssh://host2/system}. */
  FakeHypervisor byUri(String uri) {
    String rest = uri.substring(uri.indexOf("://") + 3);
    return host(rest.substring(0, rest.indexOf('/')));
  }
}
