package dev.ferry.node.process;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Runs processes on this machine with {@link ProcessBuilder}. */
public final class LocalProcessRunner implements ProcessRunner, AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(LocalProcessRunner.class);
  private static final int MAX_LINE = 64 * 1024;

  private final ExecutorService pipes;
  private final ScheduledExecutorService timers;

  public LocalProcessRunner() {
    AtomicInteger n = new AtomicInteger();
    this.pipes =
        Executors.newCachedThreadPool(
            r -> {
              Thread t = new Thread(r, "process-pipe-" + n.incrementAndGet());
              t.setDaemon(true);
              return t;
            });
    this.timers =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "process-timeouts");
              t.setDaemon(true);
              return t;
            });
  }

  @Override
  public ProcessResult run(ProcessSpec spec, Consumer<String> onStdoutLine) {
    Started started = launch(spec);
    try (InputStream out = started.process.getInputStream()) {
      readLines(out, onStdoutLine);
    } catch (IOException e) {
      // the pipe closes under us when the tree is killed; the exit code tells the story
      log.debug("stdout of {} closed: {}", spec.program(), e.getMessage());
    }
    try {
      return started.result.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      started.kill();
      throw new IllegalStateException("interrupted while waiting for " + spec.program(), e);
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException("waiting for " + spec.program(), e.getCause());
    }
  }

  @Override
  public RunningProcess start(ProcessSpec spec) {
    Started started = launch(spec);
    return new RunningProcess() {
      @Override
      public long pid() {
        return started.process.pid();
      }

      @Override
      public OutputStream stdin() {
        return started.process.getOutputStream();
      }

      @Override
      public InputStream stdout() {
        return started.process.getInputStream();
      }

      @Override
      public CompletionStage<ProcessResult> onExit() {
        return started.result;
      }

      @Override
      public void kill() {
        started.kill();
      }
    };
  }

  private Started launch(ProcessSpec spec) {
    ProcessBuilder pb = new ProcessBuilder(spec.argv());
    spec.workingDirectory().ifPresent(d -> pb.directory(d.toFile()));
    pb.environment().putAll(spec.environment());
    long t0 = System.nanoTime();
    Process process;
    try {
      process = pb.start();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start " + spec.redactedArgv(), e);
    }
    log.debug("started pid {}: {}", process.pid(), spec.redactedArgv());
    Started started = new Started(spec, process, t0);
    CompletableFuture<String> stderr =
        CompletableFuture.supplyAsync(() -> drainTail(process, spec.stderrTailBytes()), pipes);
    ScheduledFuture<?> timeout =
        timers.schedule(
            () -> {
              if (process.isAlive()) {
                started.timedOut.set(true);
                log.warn(
                    "{} (pid {}) timed out after {} s: terminating its process tree",
                    spec.program(),
                    process.pid(),
                    spec.timeout().toSeconds());
                started.kill();
              }
            },
            spec.timeout().toMillis(),
            TimeUnit.MILLISECONDS);
    process
        .onExit()
        .thenCombine(stderr, (p, tail) -> tail)
        .whenComplete(
            (tail, error) -> {
              timeout.cancel(false);
              int code = process.exitValue();
              boolean timedOut = started.timedOut.get();
              ProcessResult result =
                  new ProcessResult(
                      spec.redactedArgv(),
                      code,
                      !timedOut && spec.acceptedExitCodes().contains(code),
                      timedOut,
                      spec.redact(tail == null ? "" : tail),
                      Duration.ofNanos(System.nanoTime() - t0));
              if (!result.accepted()) {
                log.debug("{}", result.describe());
              }
              started.result.complete(result);
            });
    return started;
  }

  /** Reads stderr to the end, keeping only the last {@code limit} bytes. */
  private static String drainTail(Process process, int limit) {
    byte[] ring = new byte[limit];
    long total = 0;
    byte[] buf = new byte[8192];
    try (InputStream err = process.getErrorStream()) {
      int n;
      while ((n = err.read(buf)) > 0) {
        for (int i = 0; i < n; i++) {
          ring[(int) ((total + i) % limit)] = buf[i];
        }
        total += n;
      }
    } catch (IOException e) {
      // closed because the process was killed: keep what we have
    }
    if (total <= limit) {
      return new String(ring, 0, (int) total, StandardCharsets.UTF_8);
    }
    int start = (int) (total % limit);
    byte[] ordered = new byte[limit];
    System.arraycopy(ring, start, ordered, 0, limit - start);
    System.arraycopy(ring, 0, ordered, limit - start, start);
    return "[...]" + new String(ordered, StandardCharsets.UTF_8);
  }

  /** Splits on \n and \r (progress meters rewrite their line with \r). */
  static void readLines(InputStream in, Consumer<String> onLine) throws IOException {
    ByteArrayOutputStream line = new ByteArrayOutputStream();
    byte[] buf = new byte[8192];
    int n;
    while ((n = in.read(buf)) > 0) {
      for (int i = 0; i < n; i++) {
        byte b = buf[i];
        if (b == '\n' || b == '\r') {
          if (line.size() > 0) {
            onLine.accept(line.toString(StandardCharsets.UTF_8));
            line.reset();
          }
        } else if (line.size() < MAX_LINE) {
          line.write(b);
        }
      }
    }
    if (line.size() > 0) {
      onLine.accept(line.toString(StandardCharsets.UTF_8));
    }
  }

  @Override
  public void close() {
    pipes.shutdownNow();
    timers.shutdownNow();
  }

  private final class Started {
    final ProcessSpec spec;
    final Process process;
    final long startNanos;
    final AtomicBoolean timedOut = new AtomicBoolean();
    final AtomicBoolean killing = new AtomicBoolean();
    final CompletableFuture<ProcessResult> result = new CompletableFuture<>();

    Started(ProcessSpec spec, Process process, long startNanos) {
      this.spec = spec;
      this.process = process;
      this.startNanos = startNanos;
    }

    /**
     * SIGTERM to the process and every descendant (collected first: once the parent dies its
     * children are re-parented and no longer found), then SIGKILL to what is left after the grace.
     */
    void kill() {
      if (!killing.compareAndSet(false, true)) {
        return;
      }
      List<ProcessHandle> tree = new ArrayList<>(process.descendants().toList());
      tree.add(process.toHandle());
      tree.forEach(ProcessHandle::destroy);
      timers.schedule(
          () ->
              tree.stream().filter(ProcessHandle::isAlive).forEach(ProcessHandle::destroyForcibly),
          spec.killGrace().toMillis(),
          TimeUnit.MILLISECONDS);
    }
  }
}
