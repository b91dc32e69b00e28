package dev.ferry.node.process;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The one way the agent runs external programs (qemu-img, tar, rsync, ssh): argv lists, a timeout
 * that kills the whole process tree, a bounded stderr tail and stdout line by line. Only
 * implementations in this package touch {@link ProcessBuilder}.
 */
public interface ProcessRunner {

  /**
   * Runs to completion, handing each stdout line (split on {@code \n} and {@code \r}, so progress
   * meters count) to {@code onStdoutLine} as it arrives. Blocks the calling thread: call it from a
   * blocking dispatcher.
   */
  ProcessResult run(ProcessSpec spec, Consumer<String> onStdoutLine);

  /** Starts with raw pipes; see {@link RunningProcess}. */
  RunningProcess start(ProcessSpec spec);

  /** Runs to completion and returns stdout as text (for small, structured outputs). */
  default Output capture(ProcessSpec spec) {
    List<String> lines = new ArrayList<>();
    ProcessResult result = run(spec, lines::add);
    return new Output(result, String.join("\n", lines));
  }

  /** A result with the captured stdout. */
  record Output(ProcessResult result, String stdout) {
    /** stdout, or {@link ProcessFailedException} if the process failed. */
    public String stdoutOrThrow() {
      result.orThrow();
      return stdout;
    }
  }
}
