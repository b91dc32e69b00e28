package dev.ferry.node.process;

import java.io.InputStream;
import java.io.OutputStream;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;

/**
 * Runs every command behind a fixed argv prefix, e.g. {@code nsenter -t PID -n -m --} to run it in
 * another host's namespaces, or the test bed's {@code testbed.sh exec host1}.
 */
public final class PrefixedProcessRunner implements ProcessRunner {
  private final ProcessRunner delegate;
  private final List<String> prefix;

  public PrefixedProcessRunner(ProcessRunner delegate, List<String> prefix) {
    this.delegate = delegate;
    this.prefix = List.copyOf(prefix);
  }

  @Override
  public ProcessResult run(ProcessSpec spec, Consumer<String> onStdoutLine) {
    return delegate.run(spec.withPrefix(prefix), onStdoutLine).withoutPrefix(prefix.size());
  }

  @Override
  public RunningProcess start(ProcessSpec spec) {
    RunningProcess p = delegate.start(spec.withPrefix(prefix));
    return new RunningProcess() {
      @Override
      public long pid() {
        return p.pid();
      }

      @Override
      public OutputStream stdin() {
        return p.stdin();
      }

      @Override
      public InputStream stdout() {
        return p.stdout();
      }

      @Override
      public CompletionStage<ProcessResult> onExit() {
        return p.onExit().thenApply(r -> r.withoutPrefix(prefix.size()));
      }

      @Override
      public void kill() {
        p.kill();
      }
    };
  }
}
