package dev.ferry.node.process;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * What to run: an argv list (never a shell string), where, with which extra environment, for how
 * long, and which exit codes count as success.
 *
 * @param argv program and arguments, each passed to the kernel as is
 * @param workingDirectory directory to start in, or the agent's own
 * @param environment variables added to (or replacing) the inherited environment
 * @param timeout after this the process tree is terminated and the result says so
 * @param killGrace time between SIGTERM and SIGKILL when terminating
 * @param acceptedExitCodes exit codes that count as success
 * @param secrets strings replaced by {@code ***} wherever argv or stderr is logged or reported
 * @param stderrTailBytes how much of the end of stderr to keep
 */
public record ProcessSpec(
    List<String> argv,
    Optional<Path> workingDirectory,
    Map<String, String> environment,
    Duration timeout,
    Duration killGrace,
    Set<Integer> acceptedExitCodes,
    Set<String> secrets,
    int stderrTailBytes) {

  public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(10);

  public ProcessSpec {
    Objects.requireNonNull(argv, "argv");
    if (argv.isEmpty()) {
      throw new IllegalArgumentException("argv is empty");
    }
    for (String arg : argv) {
      Objects.requireNonNull(arg, "argv element");
      if (arg.indexOf('\0') >= 0) {
        throw new IllegalArgumentException("argv element contains NUL: " + arg);
      }
    }
    argv = List.copyOf(argv);
    environment = Map.copyOf(environment);
    acceptedExitCodes = Set.copyOf(acceptedExitCodes);
    secrets = Set.copyOf(secrets);
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive: " + timeout);
    }
    if (stderrTailBytes < 256) {
      throw new IllegalArgumentException("stderrTailBytes below 256: " + stderrTailBytes);
    }
  }

  public static ProcessSpec of(List<String> argv) {
    return new ProcessSpec(
        argv,
        Optional.empty(),
        Map.of("LC_ALL", "C"),
        DEFAULT_TIMEOUT,
        Duration.ofSeconds(5),
        Set.of(0),
        Set.of(),
        16 * 1024);
  }

  public static ProcessSpec of(String... argv) {
    return of(List.of(argv));
  }

  public ProcessSpec withTimeout(Duration newTimeout) {
    return new ProcessSpec(
        argv,
        workingDirectory,
        environment,
        newTimeout,
        killGrace,
        acceptedExitCodes,
        secrets,
        stderrTailBytes);
  }

  public ProcessSpec withKillGrace(Duration grace) {
    return new ProcessSpec(
        argv,
        workingDirectory,
        environment,
        timeout,
        grace,
        acceptedExitCodes,
        secrets,
        stderrTailBytes);
  }

  public ProcessSpec withWorkingDirectory(Path dir) {
    return new ProcessSpec(
        argv,
        Optional.of(dir),
        environment,
        timeout,
        killGrace,
        acceptedExitCodes,
        secrets,
        stderrTailBytes);
  }

  public ProcessSpec withEnv(String name, String value) {
    Map<String, String> env = new LinkedHashMap<>(environment);
    env.put(name, value);
    return new ProcessSpec(
        argv,
        workingDirectory,
        env,
        timeout,
        killGrace,
        acceptedExitCodes,
        secrets,
        stderrTailBytes);
  }

  public ProcessSpec withAcceptedExitCodes(Integer... codes) {
    return new ProcessSpec(
        argv,
        workingDirectory,
        environment,
        timeout,
        killGrace,
        new LinkedHashSet<>(List.of(codes)),
        secrets,
        stderrTailBytes);
  }

  public ProcessSpec withSecret(String secret) {
    Set<String> all = new LinkedHashSet<>(secrets);
    all.add(secret);
    return new ProcessSpec(
        argv,
        workingDirectory,
        environment,
        timeout,
        killGrace,
        acceptedExitCodes,
        all,
        stderrTailBytes);
  }

  public ProcessSpec withStderrTailBytes(int bytes) {
    return new ProcessSpec(
        argv, workingDirectory, environment, timeout, killGrace, acceptedExitCodes, secrets, bytes);
  }

  /** A copy whose argv has {@code prefix} in front, e.g. to run inside another namespace. */
  public ProcessSpec withPrefix(List<String> prefix) {
    List<String> all = new ArrayList<>(prefix);
    all.addAll(argv);
    return new ProcessSpec(
        all,
        workingDirectory,
        environment,
        timeout,
        killGrace,
        acceptedExitCodes,
        secrets,
        stderrTailBytes);
  }

  /** argv as it may be logged: secrets replaced. */
  public List<String> redactedArgv() {
    return argv.stream().map(this::redact).toList();
  }

  public String redact(String text) {
    String out = text;
    for (String secret : secrets) {
      if (!secret.isEmpty()) {
        out = out.replace(secret, "***");
      }
    }
    return out;
  }

  /** The program name, for messages. */
  public String program() {
    String first = argv.get(0);
    int slash = first.lastIndexOf('/');
    return slash >= 0 ? first.substring(slash + 1) : first;
  }
}
