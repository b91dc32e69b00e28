package dev.ferry.node.disksync;

import dev.ferry.node.process.ProcessFailedException;
import dev.ferry.node.process.ProcessResult;
import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import dev.ferry.node.process.RunningProcess;
import dev.ferry.node.process.Ssh;
import dev.ferry.node.qcow2.DeltaApplier;
import dev.ferry.node.qcow2.DeltaPlan;
import dev.ferry.node.qcow2.DeltaStream;
import dev.ferry.node.qcow2.Qcow2DeltaPlanner;
import dev.ferry.node.settings.NodeSettings;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.pekko.NotUsed;
import org.apache.pekko.stream.IOResult;
import org.apache.pekko.stream.KillSwitches;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.ThrottleMode;
import org.apache.pekko.stream.UniqueKillSwitch;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Keep;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.stream.javadsl.StreamConverters;
import org.apache.pekko.util.ByteString;

/**
 * The byte pipelines of a disk copy. Bytes that pass through the agent (tar, delta) go through a
 * Pekko stream: the reading side is pulled only as fast as the writing side (the ssh to the
 * destination) accepts, the optional throttle shapes them to the migration's bandwidth, and a
 * counter feeds progress. rsync runs with {@code --bwlimit} and reports its own progress.
 */
public final class CopyPipelines {
  private static final org.slf4j.Logger log =
      org.slf4j.LoggerFactory.getLogger(CopyPipelines.class);

  /** rsync --info=progress2: " 12,345,678 45% ..." */
  private static final Pattern RSYNC_PROGRESS = Pattern.compile("^\\s*([\\d,]+)\\s+\\d+%");

  private static final Pattern RSYNC_SENT = Pattern.compile("^Total bytes sent: ([\\d,]+)");
  private static final Pattern TAR_CHANGED = Pattern.compile("file changed as we read it");

  private final ProcessRunner runner;
  private final NodeSettings settings;
  private final Materializer materializer;
  private final Executor blocking;

  public CopyPipelines(
      ProcessRunner runner, NodeSettings settings, Materializer materializer, Executor blocking) {
    this.runner = runner;
    this.settings = settings;
    this.materializer = materializer;
    this.blocking = blocking;
  }

  /** A copy in flight: its outcome (bytes moved) and a way to stop it and its processes. */
  public static final class Copy {
    public final CompletionStage<Long> done;
    private final List<RunningProcess> processes = new CopyOnWriteArrayList<>();
    private volatile UniqueKillSwitch killSwitch;
    private volatile boolean cancelled;

    Copy(CompletionStage<Long> done) {
      this.done = done;
    }

    private Copy() {
      this.done = null;
    }

    public void cancel() {
      cancelled = true;
      UniqueKillSwitch k = killSwitch;
      if (k != null) {
        k.abort(new IllegalStateException("cancelled"));
      }
      processes.forEach(RunningProcess::kill);
    }

    boolean cancelled() {
      return cancelled;
    }
  }

  private Ssh ssh() {
    return settings.tools().ssh();
  }

  private Duration timeout(long bytes) {
    return settings.migration().timeouts().copy(bytes);
  }

  /**
   * {@code tar -S} of one file piped through the agent into {@code ssh host tar -x}. tar exits 1
   * with "file changed as we read it" when the guest writes during the copy: expected while the VM
   * runs, and covered by the final sync.
   */
  Copy tar(Path file, String host, long bytesPerSecond, long expectedBytes, AtomicLong counter) {
    Path dir = file.getParent();
    String name = file.getFileName().toString();
    ProcessSpec reader =
        ProcessSpec.of(
                settings.tools().tar(),
                "-C",
                dir.toString(),
                "-cSf",
                "-",
                "--no-recursion",
                "--",
                name)
            .withAcceptedExitCodes(0, 1)
            .withTimeout(timeout(expectedBytes));
    ProcessSpec writer =
        ProcessSpec.of(
                ssh()
                    .command(
                        host, List.of(settings.tools().tar(), "-C", dir.toString(), "-xf", "-")))
            .withTimeout(timeout(expectedBytes));
    CompletableFuture<Long> result = new CompletableFuture<>();
    Copy copy = new Copy(result);
    RunningProcess out = runner.start(writer);
    copy.processes.add(out);
    RunningProcess in = runner.start(reader);
    copy.processes.add(in);
    Source<ByteString, CompletionStage<IOResult>> source =
        StreamConverters.fromInputStream(in::stdout, settings.migration().copyChunk());
    var materialized =
        source
            .via(shape(bytesPerSecond, counter))
            .viaMat(KillSwitches.single(), Keep.right())
            .toMat(StreamConverters.fromOutputStream(out::stdin, true), Keep.both())
            .run(materializer);
    copy.killSwitch = materialized.first();
    materialized
        .second()
        .thenCompose(io -> in.onExit())
        .thenCombine(out.onExit(), (r, w) -> checkTar(r, w, counter.get()))
        .whenComplete(
            (bytes, error) -> {
              if (error != null) {
                copy.processes.forEach(RunningProcess::kill);
                result.completeExceptionally(unwrap(error, copy));
              } else {
                result.complete(bytes);
              }
            });
    return copy;
  }

  private static long checkTar(ProcessResult reader, ProcessResult writer, long bytes) {
    if (reader.exitCode() == 1 && !TAR_CHANGED.matcher(reader.stderrTail()).find()) {
      throw new ProcessFailedException(reader);
    }
    reader.orThrow();
    writer.orThrow();
    return bytes;
  }

  /** How rsync should treat the destination file. */
  public enum RsyncMode {
    /** a new sparse copy (bulk, VM running) */
    SPARSE_COPY,
    /**
     * update the existing file in place (same inode, destination's owner kept), comparing every
     * file whatever its size and time say
     */
    IN_PLACE,
    /**
     * a new sparse copy only where the file is missing, its directories created (a shared base
     * image: an existing file there is never overwritten)
     */
    IF_MISSING
  }

  public Copy rsync(
      Path file,
      String host,
      RsyncMode mode,
      long bytesPerSecond,
      long expectedBytes,
      AtomicLong counter) {
    return rsyncArgv(fileRsync(file, host, mode, bytesPerSecond), expectedBytes, counter);
  }

  /** rsync of one file to the same path on {@code host}. */
  private List<String> fileRsync(Path file, String host, RsyncMode mode, long bytesPerSecond) {
    List<String> argv = new ArrayList<>(List.of(settings.tools().rsync()));
    argv.addAll(
        switch (mode) {
          case SPARSE_COPY -> List.of("--archive", "--sparse");
          case IN_PLACE ->
              List.of(
                  "--inplace",
                  "--no-whole-file",
                  "--ignore-times",
                  "--no-owner",
                  "--no-group",
                  "--perms");
          case IF_MISSING -> List.of("--archive", "--sparse", "--ignore-existing", "--mkpath");
        });
    argv.addAll(
        List.of("--info=progress2", "--no-inc-recursive", "--stats", "-e", ssh().rsyncShell()));
    if (bytesPerSecond > 0) {
      argv.add("--bwlimit=" + Math.max(1, bytesPerSecond / 1024));
    }
    argv.add("--");
    argv.add(file.toString());
    argv.add(ssh().rsyncTarget(host, file.toString()));
    return argv;
  }

  /** rsync of whole directories (the VM directory minus the writable disks). */
  public Copy rsyncDirectory(
      Path dir,
      List<String> excludes,
      String host,
      long bytesPerSecond,
      long expectedBytes,
      AtomicLong counter) {
    List<String> argv = new ArrayList<>(List.of(settings.tools().rsync(), "--archive", "--sparse"));
    for (String e : excludes) {
      argv.add("--exclude=" + e);
    }
    argv.addAll(
        List.of("--info=progress2", "--no-inc-recursive", "--stats", "-e", ssh().rsyncShell()));
    if (bytesPerSecond > 0) {
      argv.add("--bwlimit=" + Math.max(1, bytesPerSecond / 1024));
    }
    argv.add("--");
    argv.add(dir + "/");
    argv.add(ssh().rsyncTarget(host, dir + "/"));
    return rsyncArgv(argv, expectedBytes, counter);
  }

  private Copy rsyncArgv(List<String> argv, long expectedBytes, AtomicLong counter) {
    CompletableFuture<Long> result = new CompletableFuture<>();
    Copy copy = new Copy(result);
    CompletableFuture.runAsync(
        () -> {
          try {
            result.complete(runRsync(copy, argv, expectedBytes, counter));
          } catch (RuntimeException e) {
            result.completeExceptionally(e);
          }
        },
        blocking);
    return copy;
  }

  /** Runs one rsync as part of {@code copy} (which can kill it); returns the bytes it sent. */
  private long runRsync(Copy copy, List<String> argv, long expectedBytes, AtomicLong counter) {
    AtomicLong sent = new AtomicLong(-1);
    long start = counter.get();
    RunningProcess p = runner.start(ProcessSpec.of(argv).withTimeout(timeout(expectedBytes)));
    copy.processes.add(p);
    if (copy.cancelled()) {
      p.kill();
    }
    try (BufferedReader r =
        new BufferedReader(new InputStreamReader(p.stdout(), StandardCharsets.UTF_8))) {
      readRsync(r, start, counter, sent);
    } catch (IOException e) {
      // closed when killed; the exit code says what happened
    }
    ProcessResult res = p.onExit().toCompletableFuture().join();
    if (!res.accepted()) {
      throw new ProcessFailedException(res);
    }
    return sent.get() >= 0 ? sent.get() : counter.get() - start;
  }

  /**
   * A file other VMs may share (a base image outside the VM's directories) placed on {@code host}:
   * copied only if it is missing there; if it is present it must be identical (SHA-256 on both
   * hosts) and is left as it is, since other VMs there may run on it. A different file fails the
   * copy: overwriting it could corrupt those VMs, and using it would corrupt this one.
   */
  public Copy placeShared(
      Path file, String host, long bytesPerSecond, long expectedBytes, AtomicLong counter) {
    CompletableFuture<Long> result = new CompletableFuture<>();
    Copy copy = new Copy(result);
    CompletableFuture.runAsync(
        () -> {
          try {
            Optional<String> there = digestOn(host, file, expectedBytes);
            if (there.isPresent()) {
              String here =
                  digest(
                      ProcessSpec.of(settings.tools().sha256sum(), "--", file.toString()),
                      file,
                      expectedBytes);
              if (!there.get().equals(here)) {
                throw new IllegalStateException(
                    file
                        + " exists on "
                        + host
                        + " and differs from this host's (SHA-256 "
                        + there.get()
                        + " there, "
                        + here
                        + " here): it may be shared by other VMs there, so it is not"
                        + " overwritten");
              }
              log.info("{}: already on {} and identical, not copied", file, host);
              result.complete(0L);
              return;
            }
            result.complete(
                runRsync(
                    copy,
                    fileRsync(file, host, RsyncMode.IF_MISSING, bytesPerSecond),
                    expectedBytes,
                    counter));
          } catch (RuntimeException e) {
            result.completeExceptionally(e);
          }
        },
        blocking);
    return copy;
  }

  /** The file's SHA-256 on {@code host}, or empty if it has no such file. */
  private Optional<String> digestOn(String host, Path file, long bytes) {
    ProcessSpec test =
        ProcessSpec.of(ssh().command(host, List.of("test", "-e", file.toString())))
            .withAcceptedExitCodes(0, 1)
            .withTimeout(settings.tools().commandTimeout());
    if (runner.run(test, line -> {}).orThrow().exitCode() == 1) {
      return Optional.empty();
    }
    return Optional.of(
        digest(
            ProcessSpec.of(
                ssh().command(host, List.of(settings.tools().sha256sum(), "--", file.toString()))),
            file,
            bytes));
  }

  private String digest(ProcessSpec spec, Path file, long bytes) {
    String out = runner.capture(spec.withTimeout(timeout(bytes))).stdoutOrThrow().trim();
    String sum = out.split("\\s+")[0];
    if (!sum.matches("[0-9a-f]{64}")) {
      throw new IllegalStateException(
          "unexpected sha256sum output for " + file + ": '" + out + "'");
    }
    return sum;
  }

  /** rsync rewrites its progress line with \r; {@code --stats} says what it sent in the end. */
  private static void readRsync(BufferedReader r, long start, AtomicLong counter, AtomicLong sent)
      throws IOException {
    StringBuilder line = new StringBuilder();
    int c;
    while ((c = r.read()) >= 0) {
      if (c == '\r' || c == '\n') {
        String l = line.toString();
        line.setLength(0);
        Matcher m = RSYNC_PROGRESS.matcher(l);
        if (m.find()) {
          counter.set(start + Long.parseLong(m.group(1).replace(",", "")));
        }
        Matcher s = RSYNC_SENT.matcher(l);
        if (s.find()) {
          sent.set(Long.parseLong(s.group(1).replace(",", "")));
        }
      } else {
        line.append((char) c);
      }
    }
  }

  /** A delta applier started on the destination, waiting for its stream. */
  static final class Applier {
    final RunningProcess process;
    final BufferedReader stdout;

    Applier(RunningProcess process, BufferedReader stdout) {
      this.process = process;
      this.stdout = stdout;
    }
  }

  /**
   * Starts {@link DeltaApplier} on the destination over ssh and waits for it to say READY, so the
   * JVM start happens before the switchover and not inside the paused window.
   */
  CompletionStage<Applier> startApplier(Path file, String host) {
    return CompletableFuture.supplyAsync(
        () -> {
          List<String> remote = new ArrayList<>();
          remote.add(settings.tools().java());
          remote.addAll(settings.tools().applierJavaOptions());
          remote.addAll(
              List.of(
                  "-cp",
                  settings.tools().applierClassPath(),
                  DeltaApplier.class.getName(),
                  file.toString()));
          RunningProcess p =
              runner.start(
                  ProcessSpec.of(ssh().command(host, remote))
                      .withTimeout(settings.migration().timeouts().memory(1L << 40)));
          BufferedReader r =
              new BufferedReader(new InputStreamReader(p.stdout(), StandardCharsets.UTF_8));
          try {
            String first = r.readLine();
            if (!DeltaApplier.READY.equals(first)) {
              p.kill();
              ProcessResult res = p.onExit().toCompletableFuture().join();
              throw new IllegalStateException(
                  "delta applier on " + host + " did not start: " + res.describe());
            }
          } catch (IOException e) {
            p.kill();
            throw new UncheckedIOException(e);
          }
          return new Applier(p, r);
        },
        blocking);
  }

  /**
   * Runs the delta's encoding path through a stream once, on the first cluster of the live file,
   * while the VM still runs: the real delta then meets loaded, compiled code inside the paused
   * window. Failures do not matter.
   */
  public CompletionStage<Void> warmUp(Path file) {
    DeltaPlan one =
        new DeltaPlan(List.of(new DeltaPlan.Range(0, 65536, DeltaPlan.Kind.METADATA)), 65536);
    return StreamConverters.fromInputStream(
            () -> DeltaStream.open(file, one), settings.migration().copyChunk())
        .via(shape(0, new AtomicLong()))
        .runWith(org.apache.pekko.stream.javadsl.Sink.ignore(), materializer)
        .<Void>thenApply(done -> null)
        .exceptionally(e -> null);
  }

  /** Plans the delta from the source's final file and streams it into the applier. */
  Copy delta(
      Path file,
      String bitmap,
      Applier applier,
      long bytesPerSecond,
      AtomicLong counter,
      AtomicLong planned) {
    CompletableFuture<Long> result = new CompletableFuture<>();
    Copy copy = new Copy(result);
    copy.processes.add(applier.process);
    long t0 = System.nanoTime();
    long[] marks = new long[2];
    CompletableFuture.supplyAsync(
            () -> {
              try {
                return Qcow2DeltaPlanner.plan(file, bitmap);
              } catch (IOException e) {
                throw new UncheckedIOException(e);
              }
            },
            blocking)
        .thenCompose(
            plan -> {
              marks[0] = System.nanoTime();
              planned.set(DeltaStream.encodedSize(plan));
              var mat =
                  StreamConverters.fromInputStream(
                          () -> DeltaStream.open(file, plan), settings.migration().copyChunk())
                      .via(shape(bytesPerSecond, counter))
                      .viaMat(KillSwitches.single(), Keep.right())
                      .toMat(
                          StreamConverters.fromOutputStream(applier.process::stdin, true),
                          Keep.both())
                      .run(materializer);
              copy.killSwitch = mat.first();
              return mat.second()
                  .thenApplyAsync(
                      io -> {
                        marks[1] = System.nanoTime();
                        return awaitApplied(applier, plan);
                      },
                      blocking);
            })
        .whenComplete(
            (bytes, error) -> {
              if (error == null) {
                log.info(
                    "delta of {}: {} bytes; plan {} ms, stream {} ms, applied and fsynced {} ms",
                    file,
                    bytes,
                    (marks[0] - t0) / 1_000_000,
                    (marks[1] - marks[0]) / 1_000_000,
                    (System.nanoTime() - marks[1]) / 1_000_000);
              }
              if (error != null) {
                applier.process.kill();
                result.completeExceptionally(unwrap(error, copy));
              } else {
                result.complete(bytes);
              }
            });
    return copy;
  }

  /**
   * The applier prints APPLIED once the delta is written, truncated and fsynced: that is success.
   * Its JVM's exit (and ssh's teardown) is not waited for inside the paused window.
   */
  private static long awaitApplied(Applier applier, DeltaPlan plan) {
    String line;
    try {
      line = applier.stdout.readLine();
    } catch (IOException e) {
      line = null;
    }
    if (line == null || !line.startsWith(DeltaApplier.APPLIED)) {
      ProcessResult res = applier.process.onExit().toCompletableFuture().join();
      throw new ProcessFailedException(res);
    }
    applier
        .process
        .onExit()
        .thenAccept(
            res -> {
              if (!res.accepted()) {
                log.warn("the delta applier exited after applying: {}", res.describe());
              }
            });
    return DeltaStream.encodedSize(plan);
  }

  private Flow<ByteString, ByteString, NotUsed> shape(long bytesPerSecond, AtomicLong counter) {
    Flow<ByteString, ByteString, NotUsed> flow = Flow.create();
    if (bytesPerSecond > 0) {
      // cost per 100 ms keeps the shaping smooth; a burst of one chunk avoids stalls
      int perTick = (int) Math.max(1, Math.min(Integer.MAX_VALUE, bytesPerSecond / 10));
      int burst = Math.max(perTick, settings.migration().copyChunk());
      flow =
          flow.throttle(
              perTick, Duration.ofMillis(100), burst, ByteString::size, ThrottleMode.shaping());
    }
    return flow.map(
        bs -> {
          counter.addAndGet(bs.size());
          return bs;
        });
  }

  private static Throwable unwrap(Throwable error, Copy copy) {
    Throwable t = error;
    while ((t instanceof java.util.concurrent.CompletionException
            || t instanceof java.util.concurrent.ExecutionException)
        && t.getCause() != null) {
      t = t.getCause();
    }
    if (copy.cancelled()) {
      return new IllegalStateException("cancelled");
    }
    return t;
  }
}
