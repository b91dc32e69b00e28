package dev.ferry.node.migration;

import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Bytes allocated to files (st_blocks * 512), what a sparse copy moves. Java's file attributes do
 * not expose st_blocks, so this asks {@code find}, once per tree.
 */
public final class DiskUsage {
  private final ProcessRunner runner;
  private final Duration timeout;

  public DiskUsage(ProcessRunner runner, Duration timeout) {
    this.runner = runner;
    this.timeout = timeout;
  }

  /** Allocated bytes of one file. */
  public long allocated(Path file) {
    return sum(file, List.of());
  }

  /** Allocated bytes of the regular files below {@code dir}, except {@code excluded}. */
  public long allocatedBelow(Path dir, List<Path> excluded) {
    return sum(dir, excluded);
  }

  /** The regular files below {@code dir} (links not followed), each with its allocated bytes. */
  public Map<Path, Long> filesBelow(Path dir) {
    return list(dir);
  }

  private long sum(Path root, List<Path> excluded) {
    long bytes = 0;
    for (Map.Entry<Path, Long> f : list(root).entrySet()) {
      if (!excluded.contains(f.getKey())) {
        bytes += f.getValue();
      }
    }
    return bytes;
  }

  private Map<Path, Long> list(Path root) {
    String out =
        runner
            .capture(
                ProcessSpec.of("find", root.toString(), "-type", "f", "-printf", "%b %p\\n")
                    .withTimeout(timeout))
            .stdoutOrThrow();
    Map<Path, Long> files = new LinkedHashMap<>();
    for (String line : out.split("\n")) {
      if (line.isBlank()) {
        continue;
      }
      int space = line.indexOf(' ');
      files.put(Path.of(line.substring(space + 1)), Long.parseLong(line.substring(0, space)) * 512);
    }
    return files;
  }
}
