package dev.ferry.node.process;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * A {@link ProcessRunner} for unit tests: answers each argv with the first matching scripted reply
 * and records every invocation. Unmatched commands fail loudly.
 */
public final class ScriptedProcessRunner implements ProcessRunner {

  /**
   * What a scripted process prints and how it exits. A hanging one runs until it is killed (then
   * exits 143), for tests of cancels and timeouts.
   */
  public record Reply(int exitCode, List<String> stdout, String stderr, boolean hangs) {
    public static Reply ok(String... stdout) {
      return new Reply(0, List.of(stdout), "", false);
    }

    public static Reply fail(int code, String stderr) {
      return new Reply(code, List.of(), stderr, false);
    }

    public static Reply hanging() {
      return new Reply(143, List.of(), "killed", true);
    }
  }

  private RunningProcess hanging(ProcessSpec spec) {
    CompletableFuture<ProcessResult> exit = new CompletableFuture<>();
    java.io.PipedInputStream stdout = new java.io.PipedInputStream();
    java.io.PipedOutputStream feed;
    try {
      feed = new java.io.PipedOutputStream(stdout);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    java.io.PipedOutputStream writer = feed;
    return new RunningProcess() {
      @Override
      public long pid() {
        return -1;
      }

      @Override
      public OutputStream stdin() {
        return OutputStream.nullOutputStream();
      }

      @Override
      public InputStream stdout() {
        return stdout;
      }

      @Override
      public CompletionStage<ProcessResult> onExit() {
        return exit;
      }

      @Override
      public void kill() {
        try {
          writer.close();
        } catch (java.io.IOException e) {
          // closed already
        }
        exit.complete(
            new ProcessResult(spec.redactedArgv(), 143, false, false, "killed", Duration.ZERO));
      }
    };
  }

  private record Rule(
      Predicate<List<String>> matches,
      Function<List<String>, Reply> reply,
      Consumer<List<String>> effect) {}

  private final List<Rule> rules = new CopyOnWriteArrayList<>();
  private final List<List<String>> invocations = new CopyOnWriteArrayList<>();

  /** Reply to commands whose argv contains every given word, in order of the calls to this. */
  public ScriptedProcessRunner on(Predicate<List<String>> matches, Reply reply) {
    rules.add(new Rule(matches, argv -> reply, argv -> {}));
    return this;
  }

  /** As {@link #on(Predicate, Reply)}, and runs {@code effect} (e.g. creates a file) each time. */
  public ScriptedProcessRunner on(
      Predicate<List<String>> matches, Reply reply, Consumer<List<String>> effect) {
    rules.add(new Rule(matches, argv -> reply, effect));
    return this;
  }

  /** Reply to matching commands with what {@code reply} computes from their argv. */
  public ScriptedProcessRunner onComputed(
      Predicate<List<String>> matches, Function<List<String>, Reply> reply) {
    rules.add(new Rule(matches, reply, argv -> {}));
    return this;
  }

  /** Like {@link #on(Predicate, Reply)}, but before every rule given so far. */
  public ScriptedProcessRunner onFirst(Predicate<List<String>> matches, Reply reply) {
    return onFirst(matches, reply, argv -> {});
  }

  /** Like {@link #on(Predicate, Reply, Consumer)}, but before every rule given so far. */
  public ScriptedProcessRunner onFirst(
      Predicate<List<String>> matches, Reply reply, Consumer<List<String>> effect) {
    rules.add(0, new Rule(matches, argv -> reply, effect));
    return this;
  }

  /** Commands run over ssh whose remote command line starts with {@code prefix}. */
  public static Predicate<List<String>> remoteStartsWith(String prefix) {
    return argv -> argv.contains("--") && argv.get(argv.size() - 1).startsWith(prefix);
  }

  public static Predicate<List<String>> argvContains(String... words) {
    return argv -> argv.containsAll(List.of(words));
  }

  public List<List<String>> invocations() {
    return List.copyOf(invocations);
  }

  @Override
  public ProcessResult run(ProcessSpec spec, Consumer<String> onStdoutLine) {
    invocations.add(spec.argv());
    Rule rule =
        rules.stream()
            .filter(r -> r.matches.test(spec.argv()))
            .findFirst()
            .orElseThrow(() -> new AssertionError("unscripted command: " + spec.argv()));
    rule.effect().accept(spec.argv());
    Reply reply = rule.reply().apply(spec.argv());
    reply.stdout().forEach(onStdoutLine);
    return new ProcessResult(
        spec.redactedArgv(),
        reply.exitCode(),
        spec.acceptedExitCodes().contains(reply.exitCode()),
        false,
        spec.redact(reply.stderr()),
        Duration.ZERO);
  }

  @Override
  public RunningProcess start(ProcessSpec spec) {
    Reply reply =
        rules.stream()
            .filter(r -> r.matches.test(spec.argv()))
            .map(r -> r.reply().apply(spec.argv()))
            .findFirst()
            .orElse(null);
    if (reply != null && reply.hangs()) {
      invocations.add(spec.argv());
      return hanging(spec);
    }
    List<String> lines = new ArrayList<>();
    ProcessResult result = run(spec, lines::add);
    byte[] out =
        (String.join("\n", lines) + (lines.isEmpty() ? "" : "\n")).getBytes(StandardCharsets.UTF_8);
    return new RunningProcess() {
      @Override
      public long pid() {
        return -1;
      }

      @Override
      public OutputStream stdin() {
        return OutputStream.nullOutputStream();
      }

      @Override
      public InputStream stdout() {
        return new ByteArrayInputStream(out);
      }

      @Override
      public CompletionStage<ProcessResult> onExit() {
        return CompletableFuture.completedFuture(result);
      }

      @Override
      public void kill() {}
    };
  }
}
