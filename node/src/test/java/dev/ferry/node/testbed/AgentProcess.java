package dev.ferry.node.testbed;

import dev.ferry.node.NodeAgent;
import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import dev.ferry.node.process.RunningProcess;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * One node agent JVM running inside a test-bed host (its namespaces, its libvirtd, its datastore),
 * started from this JVM's class path, with its output in {@code hosts/hostN/ferry/agent.log}.
 */
public final class AgentProcess {
  public static final int PORT = 25520;
  private static final LocalProcessRunner runner = new LocalProcessRunner();

  private final Testbed bed;
  private final String host;
  private final String extraConfig;
  private final String tlsIdentity;
  private RunningProcess process;
  private CompletableFuture<Void> ready;

  public AgentProcess(Testbed bed, String host, String extraConfig) {
    this(bed, host, extraConfig, host);
  }

  /**
   * An agent whose TLS key and certificate are those of {@code tlsIdentity} rather than its host's
   * ({@code foreign}: signed by a CA the cluster does not trust).
   */
  public AgentProcess(Testbed bed, String host, String extraConfig, String tlsIdentity) {
    this.bed = bed;
    this.host = host;
    this.extraConfig = extraConfig;
    this.tlsIdentity = tlsIdentity;
  }

  public String host() {
    return host;
  }

  public Path log() {
    return bed.hostDir(host).resolve("ferry/agent.log");
  }

  /** The configuration overlay an agent on a test-bed host runs with. */
  public static String overlay(
      Testbed bed, String host, String seedHost, String extra, String tlsIdentity) {
    return String.join(
        "\n",
        "ferry.node.host = \"" + host + "\"",
        "ferry.node.datastores = [\""
            + Testbed.DATASTORE
            + "\", \""
            + Testbed.IMAGE_DATASTORE
            + "\"]",
        "ferry.node.state-dir = \"/var/lib/ferry\"",
        "pekko.remote.artery.canonical.hostname = \"" + bed.ip(host) + "\"",
        "pekko.remote.artery.canonical.port = " + PORT,
        "pekko.cluster.seed-nodes = [\"pekko://ferry@" + bed.ip(seedHost) + ":" + PORT + "\"]",
        // a killed agent is noticed and downed quickly in tests
        "pekko.cluster.split-brain-resolver.stable-after = 5s",
        // remoting over TLS, as config/tls.conf sets it up, with this host's certificate
        bed.tlsConfig(tlsIdentity),
        extra,
        "");
  }

  public synchronized void start(String seedHost) {
    Path dir = bed.hostDir(host).resolve("ferry");
    try {
      Files.createDirectories(dir);
      Files.writeString(
          dir.resolve("agent.conf"), overlay(bed, host, seedHost, extraConfig, tlsIdentity));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    List<String> argv =
        new ArrayList<>(
            List.of(
                bed.repo().resolve("testbed/testbed.sh").toString(),
                "exec",
                host,
                "java",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-Dconfig.file=/var/lib/ferry/agent.conf",
                // the agent's own logging, not the tests' (logback-test.xml is on this class path)
                "-Dlogback.configurationFile=logback.xml",
                "-cp",
                absoluteClassPath(),
                NodeAgent.class.getName()));
    process =
        runner.start(
            ProcessSpec.of(argv)
                .withTimeout(Duration.ofHours(6))
                .withEnv("FERRY_TB", bed.stateDir().toString()));
    ready = new CompletableFuture<>();
    RunningProcess p = process;
    CompletableFuture<Void> r = ready;
    Thread pump =
        new Thread(
            () -> {
              try (BufferedReader in =
                      new BufferedReader(
                          new InputStreamReader(p.stdout(), StandardCharsets.UTF_8));
                  Writer out =
                      Files.newBufferedWriter(
                          log(),
                          StandardCharsets.UTF_8,
                          StandardOpenOption.CREATE,
                          StandardOpenOption.APPEND)) {
                String line;
                while ((line = in.readLine()) != null) {
                  out.write(line);
                  out.write('\n');
                  out.flush();
                  if (line.contains(NodeAgent.READY)) {
                    r.complete(null);
                  }
                }
              } catch (IOException e) {
                // the agent stopped
              }
              r.completeExceptionally(
                  new IllegalStateException("agent on " + host + " exited; see " + log()));
            },
            "agent-log-" + host);
    pump.setDaemon(true);
    pump.start();
  }

  /** nsenter starts the agent in the namespace holder's working directory, not ours. */
  private static String absoluteClassPath() {
    return java.util.Arrays.stream(
            System.getProperty("java.class.path").split(java.io.File.pathSeparator))
        .map(p -> Path.of(p).toAbsolutePath().toString())
        .collect(java.util.stream.Collectors.joining(java.io.File.pathSeparator));
  }

  /** Whether the agent becomes ready within {@code timeout} (false if it exits or times out). */
  public boolean readyWithin(Duration timeout) {
    try {
      ready.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      return true;
    } catch (Exception e) {
      return false;
    }
  }

  public void awaitReady(Duration timeout) {
    try {
      ready.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw new IllegalStateException(
          "agent on " + host + " not ready within " + timeout + "; see " + log(), e);
    }
  }

  /** The agent's own JVM (below the testbed.sh and nsenter processes). */
  public Optional<ProcessHandle> jvm() {
    if (process == null) {
      return Optional.empty();
    }
    return ProcessHandle.of(process.pid())
        .flatMap(
            p ->
                p.descendants()
                    .filter(d -> d.info().command().map(c -> c.endsWith("/java")).orElse(false))
                    .findFirst());
  }

  /** SIGTERM to the agent and what started it; the JVM shuts down cleanly. */
  public synchronized void stop() {
    if (process != null) {
      jvm().ifPresent(ProcessHandle::destroy);
      process.kill();
      process
          .onExit()
          .toCompletableFuture()
          .orTimeout(30, TimeUnit.SECONDS)
          .exceptionally(e -> null)
          .join();
      process = null;
    }
  }

  /** SIGKILL to the agent's JVM: a crash, as far as the agent can tell. */
  public synchronized void kill9() {
    jvm().ifPresent(ProcessHandle::destroyForcibly);
    if (process != null) {
      process
          .onExit()
          .toCompletableFuture()
          .orTimeout(30, TimeUnit.SECONDS)
          .exceptionally(e -> null)
          .join();
      process = null;
    }
  }

  public boolean running() {
    return jvm().map(ProcessHandle::isAlive).orElse(false);
  }
}
