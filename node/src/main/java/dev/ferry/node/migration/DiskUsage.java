package dev.ferry.node.migration;

import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
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
    return list(file).values().stream().mapToLong(Long::longValue).sum();
  }

  /**
   * The regular files and symbolic links below {@code dir} (links listed, never followed), each
   * with its allocated bytes (0 for a link).
   */
  public Map<Path, Long> filesBelow(Path dir) {
    return list(dir);
  }

  private Map<Path, Long> list(Path root) {
    String out =
        runner
            .capture(
                ProcessSpec.of(
                        "find",
                        root.toString(),
                        "(",
                        "-type",
                        "f",
                        "-o",
                        "-type",
                        "l",
                        ")",
                        "-printf",
                        "%b %p\\n")
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
