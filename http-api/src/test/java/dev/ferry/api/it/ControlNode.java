package dev.ferry.api.it;

import dev.ferry.api.FerryServer;
import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import dev.ferry.node.process.RunningProcess;
import dev.ferry.node.testbed.AgentProcess;
import dev.ferry.node.testbed.Testbed;
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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * A Ferry control node in the test bed's root namespace: {@link FerryServer} with no agent ({@code
 * ferry.server.agent = off}), the only member with the scheduler role, its journal an H2 file that
 * survives a kill, and the API on the bridge address so drivers inside the hosts reach it.
 */
public final class ControlNode {
  static final int PORT = 25521;
  static final int API_PORT = 8480;
  static final int MANAGEMENT_PORT = 8558;
  private static final LocalProcessRunner runner = new LocalProcessRunner();

  private final Testbed bed;
  private final String token;
  private final String extra;
  private final Path dir;
  private RunningProcess process;
  private CompletableFuture<Void> ready;

  public ControlNode(Testbed bed, String token, String extra) {
    this.bed = bed;
    this.token = token;
    this.extra = extra;
    this.dir = bed.stateDir().resolve("control");
  }

  /** The API: https, with the bed's certificate of the root namespace (tb-root). */
  public String url() {
    return "https://" + bed.rootIp() + ":" + API_PORT;
  }

  /** The CA (PEM) clients trust for {@link #url}. */
  public Path caFile() {
    return bed.pkiDir("tb-root").resolve("ca.crt");
  }

  /** An HTTP client that trusts {@link #caFile} and nothing else. */
  public java.net.http.HttpClient httpClient() {
    return java.net.http.HttpClient.newBuilder()
        .sslContext(dev.ferry.api.ApiTls.trusting(caFile()))
        .connectTimeout(Duration.ofSeconds(10))
        .build();
  }

  /** The API certificate's SPKI pin (Chromium's --ignore-certificate-errors-spki-list). */
  public String spkiPin() {
    try (java.io.InputStream in = Files.newInputStream(bed.pkiDir("tb-root").resolve("tls.crt"))) {
      java.security.cert.Certificate c =
          java.security.cert.CertificateFactory.getInstance("X.509").generateCertificate(in);
      return java.util.Base64.getEncoder()
          .encodeToString(
              java.security.MessageDigest.getInstance("SHA-256")
                  .digest(c.getPublicKey().getEncoded()));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (java.security.GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Probes and metrics (no token). */
  public String managementUrl() {
    return "http://" + bed.rootIp() + ":" + MANAGEMENT_PORT;
  }

  public Path log() {
    return dir.resolve("control.log");
  }

  /** Forgets the journal of an earlier run (the test bed's state directory outlives runs). */
  public void wipe() {
    if (Files.isDirectory(dir)) {
      try (var files = Files.walk(dir)) {
        files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  public synchronized void start() {
    try {
      Files.createDirectories(dir);
      Files.writeString(
          dir.resolve("control.conf"),
          String.join(
              "\n",
              "ferry.server.agent = off",
              "ferry.node.host = \"control\"",
              "ferry.node.state-dir = \"" + dir + "\"",
              "ferry.scheduler.role = \"scheduler\"",
              "pekko.cluster.roles = [\"scheduler\"]",
              "ferry.api.interface = \"" + bed.rootIp() + "\"",
              "ferry.api.port = " + API_PORT,
              "ferry.api.auth.token = \"" + token + "\"",
              // beyond loopback the API must serve TLS: the bed's root-namespace certificate
              "ferry.api.tls.enabled = on",
              "ferry.api.tls.key-file = \"" + bed.pkiDir("tb-root").resolve("tls.key") + "\"",
              "ferry.api.tls.cert-file = \"" + bed.pkiDir("tb-root").resolve("tls.crt") + "\"",
              "ferry.management.interface = \"" + bed.rootIp() + "\"",
              "ferry.management.port = " + MANAGEMENT_PORT,
              "pekko.remote.artery.canonical.hostname = \"" + bed.rootIp() + "\"",
              "pekko.remote.artery.canonical.port = " + PORT,
              "pekko.cluster.seed-nodes = [\"pekko://ferry@"
                  + bed.ip("host1")
                  + ":"
                  + AgentProcess.PORT
                  + "\"]",
              "pekko.cluster.split-brain-resolver.stable-after = 5s",
              bed.tlsConfig("tb-root"),
              extra,
              ""));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    List<String> argv =
        new ArrayList<>(
            List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-Dconfig.file=" + dir.resolve("control.conf"),
                "-Dlogback.configurationFile=logback.xml",
                "-cp",
                System.getProperty("java.class.path"),
                FerryServer.class.getName()));
    process = runner.start(ProcessSpec.of(argv).withTimeout(Duration.ofHours(6)));
    try {
      // for testbed.sh down, when the bed outlives this JVM (scripts/demo.sh --keep)
      Files.writeString(dir.resolve("pid"), process.pid() + "\n");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
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
                  if (line.contains(FerryServer.API_READY)) {
                    r.complete(null);
                  }
                }
              } catch (IOException e) {
                // the node stopped
              }
              r.completeExceptionally(
                  new IllegalStateException("control node exited; see " + log()));
            },
            "control-log");
    pump.setDaemon(true);
    pump.start();
    try {
      ready.get(90, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException("control node not ready; see " + log(), e);
    }
  }

  /** SIGKILL: a crash of the scheduler's host, as far as the cluster can tell. */
  public synchronized void kill9() {
    if (process != null) {
      ProcessHandle.of(process.pid()).ifPresent(ProcessHandle::destroyForcibly);
      process
          .onExit()
          .toCompletableFuture()
          .orTimeout(30, TimeUnit.SECONDS)
          .exceptionally(e -> null)
          .join();
      process = null;
    }
  }

  public synchronized void stop() {
    if (process != null) {
      ProcessHandle.of(process.pid()).ifPresent(ProcessHandle::destroy);
      process
          .onExit()
          .toCompletableFuture()
          .orTimeout(30, TimeUnit.SECONDS)
          .exceptionally(e -> null)
          .join();
      process.kill();
      process = null;
    }
  }
}
