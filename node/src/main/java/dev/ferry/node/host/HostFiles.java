package dev.ferry.node.host;

import java.nio.file.Path;

/**
 * Where this agent finds a host path on its own file system. On a hypervisor host the answer is the
 * path itself; unit tests that run a source and a destination "host" in one JVM give each its own
 * root, so that the same absolute path (the same on both hosts, as migrations require) lands in
 * different trees.
 */
public record HostFiles(Path root) {
  public static final HostFiles DIRECT = new HostFiles(Path.of("/"));

  public Path local(Path hostPath) {
    if (root.equals(Path.of("/"))) {
      return hostPath;
    }
    return root.resolve(hostPath.toString().substring(1));
  }

  public Path local(String hostPath) {
    return local(Path.of(hostPath));
  }
}
