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
import java.util.function.Predicate;

/**
 * A {@link ProcessRunner} for unit tests: answers each argv with the first matching scripted reply
 * and records every invocation. Unmatched commands fail loudly.
 */
public final class ScriptedProcessRunner implements ProcessRunner {

  /** What a scripted process prints and how it exits. */
  public record Reply(int exitCode, List<String> stdout, String stderr) {
    public static Reply ok(String... stdout) {
      return new Reply(0, List.of(stdout), "");
    }

    public static Reply fail(int code, String stderr) {
      return new Reply(code, List.of(), stderr);
    }
  }

  private record Rule(Predicate<List<String>> matches, Reply reply) {}

  private final List<Rule> rules = new CopyOnWriteArrayList<>();
  private final List<List<String>> invocations = new CopyOnWriteArrayList<>();

  /** Reply to commands whose argv contains every given word, in order of the calls to this. */
  public ScriptedProcessRunner on(Predicate<List<String>> matches, Reply reply) {
    rules.add(new Rule(matches, reply));
    return this;
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
    Reply reply =
        rules.stream()
            .filter(r -> r.matches.test(spec.argv()))
            .map(Rule::reply)
            .findFirst()
            .orElseThrow(() -> new AssertionError("unscripted command: " + spec.argv()));
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
    List<String> lines = new ArrayList<>();
    ProcessResult result = run(spec, lines::add);
    byte[] out = String.join("\n", lines).getBytes(StandardCharsets.UTF_8);
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
