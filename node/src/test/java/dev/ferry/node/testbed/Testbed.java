package dev.ferry.node.testbed;

import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.PrefixedProcessRunner;
import dev.ferry.node.process.ProcessResult;
import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The project's multi-host libvirt/QEMU test bed ({@code testbed/testbed.sh}) seen from a test: one
 * bed per test JVM, brought up on first use and torn down when the JVM exits. If the bed cannot
 * start, the test fails with the script's own error: these tests are never skipped.
 */
public final class Testbed {
  public static final String DATASTORE = "/var/lib/one/datastores/0";

  /** OpenNebula's image datastore 1 on every host (testbed/opennebula.sh): shared base images. */
  public static final String IMAGE_DATASTORE = "/var/lib/one/datastores/1";

  private static Testbed shared;

  private final Path repo;
  private final Path script;
  private Path pki;
  private final Path state;
  private final LocalProcessRunner runner = new LocalProcessRunner();
  private int hosts;

  private Testbed(Path repo) {
    this.repo = repo;
    this.script = repo.resolve("testbed/testbed.sh");
    String env = System.getenv("FERRY_TB");
    this.state = Path.of(env == null || env.isEmpty() ? "/var/tmp/ferry-tb" : env);
  }

  /** The shared bed, with at least {@code n} hosts up. */
  public static synchronized Testbed shared(int n) {
    if (shared == null) {
      shared = new Testbed(findRepo());
      Runtime.getRuntime()
          .addShutdownHook(
              new Thread(
                  () -> {
                    if (!keep) {
                      shared.downQuietly();
                    }
                  },
                  "testbed-down"));
    }
    if (shared.hosts < n) {
      shared.down();
      shared.up(n);
    }
    return shared;
  }

  private static volatile boolean keep;

  /** Leaves the shared bed up when this JVM exits (the demo's {@code --keep}). */
  public static void keepOnExit() {
    keep = true;
  }

  /** The shared bed as it is (up or down), for tests that manage the bed themselves. */
  public static synchronized Testbed controller() {
    if (shared == null) {
      shared(0);
    }
    return shared;
  }

  private static Path findRepo() {
    Path dir = Path.of("").toAbsolutePath();
    while (dir != null && !Files.isRegularFile(dir.resolve("testbed/testbed.sh"))) {
      dir = dir.getParent();
    }
    if (dir == null) {
      throw new IllegalStateException(
          "testbed/testbed.sh not found above " + Path.of("").toAbsolutePath());
    }
    return dir;
  }

  public Path repo() {
    return repo;
  }

  public Path stateDir() {
    return state;
  }

  public int hosts() {
    return hosts;
  }

  public synchronized void up(int n) {
    ProcessResult r =
        runner.run(
            ProcessSpec.of(script.toString(), "up", Integer.toString(n))
                .withTimeout(Duration.ofMinutes(3))
                .withEnv("FERRY_TB", state.toString()),
            line -> {});
    if (!r.accepted()) {
      throw new IllegalStateException(
          "the test bed did not come up (are we root, and did scripts/install-deps.sh run?): "
              + r.stderrTail());
    }
    hosts = n;
  }

  /**
   * Pekko's TLS for a node of the bed: the repository's config/tls.conf, with the key and
   * certificate of {@code identity} ({@code host1}..., {@code tb-root} for the root namespace's
   * control node and clients, {@code foreign} for one signed by another CA), which {@code
   * testbed.sh pki} makes.
   */
  public synchronized String tlsConfig(String identity) {
    return "include file(\""
        + repo.resolve("config/tls.conf")
        + "\")\npekko.remote.artery.ssl.rotating-keys-engine.secret-mount-point = \""
        + pkiDir(identity)
        + "\"\n";
  }

  /**
   * The directory of {@code identity}'s PEM files ({@code tls.key}, {@code tls.crt}, {@code
   * ca.crt}), made by {@code testbed.sh pki} on first use.
   */
  public synchronized Path pkiDir(String identity) {
    if (pki == null) {
      String dir =
          runner
              .capture(
                  ProcessSpec.of(script.toString(), "pki")
                      .withTimeout(Duration.ofMinutes(1))
                      .withEnv("FERRY_TB", state.toString()))
              .stdoutOrThrow();
      pki = Path.of(dir.strip());
    }
    return pki.resolve(identity);
  }

  public synchronized void down() {
    runner
        .run(
            ProcessSpec.of(script.toString(), "down")
                .withTimeout(Duration.ofMinutes(2))
                .withEnv("FERRY_TB", state.toString()),
            line -> {})
        .orThrow();
    hosts = 0;
  }

  private void downQuietly() {
    try {
      if (hosts > 0) {
        down();
      }
    } catch (RuntimeException e) {
      System.err.println("testbed down failed: " + e.getMessage());
    }
  }

  /** What a bed that is down left behind; empty when clean. */
  public List<String> leftovers() {
    ProcessRunner.Output out =
        runner.capture(
            ProcessSpec.of(script.toString(), "leftovers")
                .withAcceptedExitCodes(0, 1)
                .withEnv("FERRY_TB", state.toString()));
    out.result().orThrow();
    return out.stdout().isBlank() ? List.of() : Arrays.asList(out.stdout().split("\n"));
  }

  /** A runner whose commands run inside {@code host}. */
  public ProcessRunner in(String host) {
    return new PrefixedProcessRunner(runner, List.of(script.toString(), "exec", host));
  }

  /** Runs a command inside a host and returns its result and stdout. */
  public ProcessRunner.Output exec(String host, String... argv) {
    return in(host).capture(ProcessSpec.of(argv).withTimeout(Duration.ofMinutes(5)));
  }

  /** Runs a command inside a host; its stdout, or an exception with its stderr. */
  public String execOk(String host, String... argv) {
    ProcessRunner.Output out = exec(host, argv);
    if (!out.result().accepted()) {
      throw new IllegalStateException(
          "[" + host + "] " + String.join(" ", argv) + " -> " + out.result().describe());
    }
    return out.stdout();
  }

  /** {@code virsh} on a host. */
  public String virsh(String host, String... args) {
    List<String> argv = new ArrayList<>(List.of("virsh", "-q"));
    argv.addAll(List.of(args));
    return execOk(host, argv.toArray(String[]::new)).strip();
  }

  /** Defines and starts a test guest (see {@code testbed.sh mkvm}). */
  public GuestConsole mkvm(String host, String vm, String... options) {
    List<String> argv = new ArrayList<>(List.of(script.toString(), "mkvm", host, vm));
    argv.addAll(List.of(options));
    ProcessResult r =
        runner.run(
            ProcessSpec.of(argv)
                .withTimeout(Duration.ofMinutes(5))
                .withEnv("FERRY_TB", state.toString()),
            line -> {});
    if (!r.accepted()) {
      throw new IllegalStateException("mkvm " + vm + " on " + host + ": " + r.stderrTail());
    }
    return console(host, vm);
  }

  /**
   * One of the bed's OpenNebula commands ({@code testbed.sh one-...}, see {@code
   * testbed/opennebula.sh}), run from the root namespace as the front-end would; its exit code,
   * stdout and stderr. {@code env} adds variables (name=value).
   */
  public ProcessRunner.Output one(List<String> env, String command, String... args) {
    List<String> argv = new ArrayList<>(List.of(script.toString(), "one-" + command));
    argv.addAll(List.of(args));
    ProcessSpec spec =
        ProcessSpec.of(argv)
            .withTimeout(Duration.ofMinutes(10))
            .withAcceptedExitCodes(0, 1, 2, 3)
            .withStderrTailBytes(256 * 1024)
            .withEnv("FERRY_TB", state.toString());
    for (String e : env) {
      spec = spec.withEnv(e.substring(0, e.indexOf('=')), e.substring(e.indexOf('=') + 1));
    }
    return runner.capture(spec);
  }

  /** {@link #one} that must succeed: its stdout. */
  public String oneOk(String command, String... args) {
    ProcessRunner.Output out = one(List.of(), command, args);
    if (out.result().exitCode() != 0) {
      throw new IllegalStateException(
          "one-" + command + " " + String.join(" ", args) + ": " + out.result().describe());
    }
    return out.stdout();
  }

  /** The serial console log of {@code vm} on {@code host}. */
  public GuestConsole console(String host, String vm) {
    return new GuestConsole(
        host, vm, state.resolve("hosts/" + host + "/log-libvirt/qemu/" + vm + ".serial.log"));
  }

  /** Destroys and undefines a guest if it exists on {@code host}; for test clean-up. */
  public void removeVm(String host, String vm) {
    exec(host, "virsh", "destroy", vm);
    exec(host, "virsh", "undefine", "--snapshots-metadata", vm);
    exec(host, "rm", "-rf", DATASTORE + "/" + vm);
    exec(host, "rm", "-f", "/dev/shm/" + vm + "-shm"); // mkvm --shmem's shared memory
  }

  /** libvirt URI for a client in the root namespace: the host's own socket. */
  public String libvirtUri(String host) {
    return "qemu+unix:///system?socket="
        + state.resolve("hosts/" + host + "/run/libvirt/libvirt-sock");
  }

  /** A file of {@code host}'s private datastore, as seen from the root namespace. */
  public Path datastoreFile(String host, String pathInHost) {
    if (!pathInHost.startsWith(DATASTORE + "/")) {
      throw new IllegalArgumentException(pathInHost + " is not in " + DATASTORE);
    }
    return state.resolve(
        "hosts/" + host + "/datastore/" + pathInHost.substring(DATASTORE.length() + 1));
  }

  public Path hostDir(String host) {
    return state.resolve("hosts/" + host);
  }

  public String ip(String host) {
    String net = System.getenv().getOrDefault("FERRY_TB_NET", "10.79.0");
    return net + "." + (10 + Integer.parseInt(host.substring("host".length())));
  }

  /** PIDs of processes inside {@code host} whose command line contains every given word. */
  public List<Long> pidsInHost(String host, String... words) {
    String holder;
    try {
      holder = Files.readString(hostDir(host).resolve("holder.pid")).trim();
      String netns = Files.readSymbolicLink(Path.of("/proc", holder, "ns/net")).toString();
      List<Long> pids = new ArrayList<>();
      try (var procs = Files.list(Path.of("/proc"))) {
        for (Path p : procs.filter(x -> x.getFileName().toString().matches("\\d+")).toList()) {
          try {
            if (!Files.readSymbolicLink(p.resolve("ns/net")).toString().equals(netns)) {
              continue;
            }
            String cmd =
                new String(
                        Files.readAllBytes(p.resolve("cmdline")),
                        java.nio.charset.StandardCharsets.UTF_8)
                    .replace('\0', ' ');
            if (java.util.Arrays.stream(words).allMatch(cmd::contains)) {
              pids.add(Long.parseLong(p.getFileName().toString()));
            }
          } catch (java.io.IOException gone) {
            // exited while we looked
          }
        }
      }
      return pids;
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /** Stops {@code host}'s sshd (the listener only: sessions already open go on). */
  public void stopSshd(String host) {
    try {
      long pid = Long.parseLong(Files.readString(hostDir(host).resolve("run/sshd.pid")).trim());
      ProcessHandle.of(pid).ifPresent(ProcessHandle::destroy);
      org.awaitility.Awaitility.await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> ProcessHandle.of(pid).map(p -> !p.isAlive()).orElse(true));
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  public void startSshd(String host) {
    execOk(host, "/usr/sbin/sshd", "-f", hostDir(host).resolve("sshd_config").toString());
  }

  /** The root namespace's address on the test-bed bridge. */
  public String rootIp() {
    return System.getenv().getOrDefault("FERRY_TB_NET", "10.79.0") + ".1";
  }
}
