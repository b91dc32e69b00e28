package dev.ferry.api;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Who may call the API. The cluster token can do everything; a host token (one per hypervisor, for
 * the OpenNebula driver there) may only submit, watch and cancel migrations whose source is its own
 * host, and ask where a VM runs: a hypervisor that is broken into cannot drain, cancel or rebalance
 * the rest of the cloud with what it holds.
 */
final class Credentials {

  /** An authenticated caller. */
  sealed interface Caller permits Admin, HostDriver {}

  /** The cluster token's holder (operators, the CLI, the status page). */
  record Admin() implements Caller {}

  /** A host token's holder: the driver on {@code host}. */
  record HostDriver(String host) implements Caller {}

  private record HostToken(String host, byte[] token) {}

  private final byte[] admin;
  private final List<HostToken> hosts;

  private Credentials(byte[] admin, List<HostToken> hosts) {
    this.admin = admin;
    this.hosts = List.copyOf(hosts);
  }

  /**
   * The cluster token and the host tokens file: one {@code <host> <token>} per line, {@code #}
   * comments; an empty path means none.
   */
  static Credentials of(String adminToken, String hostTokensFile) {
    List<HostToken> hosts = new ArrayList<>();
    if (!hostTokensFile.isEmpty()) {
      List<String> lines;
      try {
        lines = Files.readAllLines(Path.of(hostTokensFile), StandardCharsets.UTF_8);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read ferry.api.auth.host-tokens-file", e);
      }
      int n = 0;
      for (String line : lines) {
        n++;
        String l = line.strip();
        if (l.isEmpty() || l.startsWith("#")) {
          continue;
        }
        String[] parts = l.split("\\s+");
        if (parts.length != 2 || parts[1].length() < 16) {
          throw new IllegalArgumentException(
              hostTokensFile
                  + " line "
                  + n
                  + ": expected '<host> <token of at least 16 characters>'");
        }
        if (MessageDigest.isEqual(bytes(parts[1]), bytes(adminToken))) {
          throw new IllegalArgumentException(
              hostTokensFile + " line " + n + ": a host token must differ from the cluster token");
        }
        hosts.add(new HostToken(parts[0], bytes(parts[1])));
      }
    }
    return new Credentials(bytes(adminToken), hosts);
  }

  /** The caller a bearer token names, if any (compared in constant time). */
  Optional<Caller> identify(String bearer) {
    byte[] given = bytes(bearer);
    if (admin.length > 0 && MessageDigest.isEqual(given, admin)) {
      return Optional.of(new Admin());
    }
    for (HostToken h : hosts) {
      if (MessageDigest.isEqual(given, h.token())) {
        return Optional.of(new HostDriver(h.host()));
      }
    }
    return Optional.empty();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
