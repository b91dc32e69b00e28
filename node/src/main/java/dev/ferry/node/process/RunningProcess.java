package dev.ferry.node.process;

import java.io.InputStream;
import java.io.OutputStream;
import java.util.concurrent.CompletionStage;

/**
 * A started process with its raw pipes, for streaming bytes through it (a tar or ssh in a copy
 * pipeline). Stderr is drained by the runner into the result's tail; the timeout still applies.
 */
public interface RunningProcess {
  long pid();

  /** The process's stdin. Closing it sends EOF. */
  OutputStream stdin();

  /** The process's stdout. Read it, or the process blocks once the pipe is full. */
  InputStream stdout();

  /** Completes when the process has exited and stderr is drained. */
  CompletionStage<ProcessResult> onExit();

  /** Terminates the process and its descendants: SIGTERM, then SIGKILL after the grace. */
  void kill();
}
