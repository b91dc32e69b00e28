package dev.ferry.node.process;

import java.time.Duration;
import java.util.List;

/**
 * How a process ended.
 *
 * @param argv the redacted argv
 * @param exitCode the exit code, or -1 if it was killed by a signal we sent
 * @param accepted whether the exit code is one the spec accepts and no timeout happened
 * @param timedOut whether the timeout fired and the tree was terminated
 * @param stderrTail the end of stderr (bounded, redacted)
 * @param duration wall time from start to exit
 */
public record ProcessResult(
    List<String> argv,
    int exitCode,
    boolean accepted,
    boolean timedOut,
    String stderrTail,
    Duration duration) {
  private static final int MESSAGE_TAIL = 400;

  public ProcessResult {
    argv = List.copyOf(argv);
  }

  /** Returns this result, or throws {@link ProcessFailedException} if it was not accepted. */
  public ProcessResult orThrow() {
    if (!accepted) {
      throw new ProcessFailedException(this);
    }
    return this;
  }

  /** What happened, for logs and errors: the program, how it ended, the end of stderr. */
  public String describe() {
    String program = argv.isEmpty() ? "?" : argv.get(0);
    String how = timedOut ? "timed out after " + duration.toMillis() + " ms" : "exited " + exitCode;
    String tail = stderrTail.strip().replaceAll("\\s*\n\\s*", " | ");
    if (tail.length() > MESSAGE_TAIL) {
      tail = "..." + tail.substring(tail.length() - MESSAGE_TAIL);
    }
    return program + " " + how + (tail.isEmpty() ? "" : ": " + tail);
  }

  /** A copy whose argv lacks the first {@code n} words (a prefix a wrapper added). */
  public ProcessResult withoutPrefix(int n) {
    return new ProcessResult(
        argv.subList(Math.min(n, argv.size()), argv.size()),
        exitCode,
        accepted,
        timedOut,
        stderrTail,
        duration);
  }
}
