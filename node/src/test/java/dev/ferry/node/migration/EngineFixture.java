package dev.ferry.node.migration;

import static dev.ferry.node.process.ScriptedProcessRunner.argvContains;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.ferry.node.agent.AgentGuardian;
import dev.ferry.node.fakes.FakeCloud;
import dev.ferry.node.fakes.FakeHypervisor;
import dev.ferry.node.fakes.FakeImageTool;
import dev.ferry.node.host.HostFiles;
import dev.ferry.node.host.OpenFiles;
import dev.ferry.node.image.ImageSnapshot;
import dev.ferry.node.journal.FileMigrationJournal;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.JournalException;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.node.process.ScriptedProcessRunner.Reply;
import dev.ferry.node.settings.NodeSettings;
import dev.ferry.node.validation.DatastorePaths;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.FinalSyncMethod;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ManualTime;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two hosts of fakes for the engine's unit tests: {@link FakeHypervisor}s joined by a {@link
 * FakeCloud}, {@link FakeImageTool}s, scripted processes, real journals in a temporary directory,
 * and the real agents, on {@link ManualTime}. One {@link ActorTestKit} per test class; each test
 * gets fresh hosts. The flows' test classes extend it.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class EngineFixture {
  private static final Config CONFIG =
      ManualTime.config()
          .withFallback(
              ConfigFactory.parseString("pekko.actor.provider = local\npekko.loglevel = WARNING"))
          .withFallback(ConfigFactory.load());

  final ActorTestKit testKit = ActorTestKit.create(CONFIG);

  final ManualTime manualTime = ManualTime.get(testKit.system());

  static final AtomicInteger hostIds = new AtomicInteger();

  static final String DS = "/ds0";

  static final String VM = "vm1";

  static final String DISK = DS + "/" + VM + "/disk.0";

  @TempDir Path tmp;
  ExecutorService blocking;

  final List<FileChannel> qemuFds = new ArrayList<>();

  final Map<Path, List<ImageSnapshot>> images = new ConcurrentHashMap<>();

  FakeCloud cloud;

  String src;

  String dst;

  FakeHypervisor srcHv;

  FakeHypervisor dstHv;

  FakeImageTool dstImages;

  FakeImageTool srcImages;

  ScriptedProcessRunner srcRunner;

  ScriptedProcessRunner dstRunner;

  @AfterAll
  void stop() {
    testKit.shutdownTestKit();
  }

  final List<ActorRef<AgentGuardian.Message>> agents = new ArrayList<>();

  @AfterEach
  void close() throws IOException {
    agents.forEach(testKit::stop);
    for (FileChannel c : qemuFds) {
      c.close();
    }
    blocking.shutdownNow();
  }

  Path root(String host) {
    return tmp.resolve(host);
  }

  @BeforeEach
  void hosts() throws IOException {
    // one instance (and one ActorTestKit) per class: what a test changes is reset here
    blocking = Executors.newCachedThreadPool();
    cloud = new FakeCloud();
    images.clear();
    qemuFds.clear();
    agents.clear();
    sourceJournalFails = e -> false;
    extraConfig = "";
    int n = hostIds.incrementAndGet();
    src = "src" + n;
    dst = "dst" + n;
    srcHv = cloud.host(src);
    dstHv = cloud.host(dst);
    Files.createDirectories(root(src).resolve("ds0/vm1"));
    Files.createDirectories(root(dst).resolve("ds0"));
    Files.writeString(root(src).resolve("ds0/vm1/disk.0"), "qcow2 bytes");
    Files.writeString(root(src).resolve("ds0/vm1/deployment.0"), "<domain/>");
    srcHv.addRunning(VM, 131072, List.of(DISK));
    srcHv.addSnapshot(VM, "snap-0", null);
    srcHv.addSnapshot(VM, "snap-1", "snap-0");
    srcHv.calls.clear(); // set-up is not what the tests look at
    images.put(
        Path.of(DISK),
        List.of(
            new ImageSnapshot("1", "snap-0", 100, 1, 2, 3, 4),
            new ImageSnapshot("2", "snap-1", 200, 5, 6, 7, 8)));
    dstImages = new FakeImageTool(images);
    srcRunner = new ScriptedProcessRunner();
    dstRunner = new ScriptedProcessRunner();
    // every copy to the destination "creates" its file there; the test JVM then holds it open
    // as the destination QEMU would, for the open-inode check
    srcRunner
        .onComputed(argvContains("find"), argv -> listFiles(src, argv.get(1)))
        .on(argvContains("tar"), Reply.ok())
        .on(argvContains("ssh"), Reply.ok(), argv -> arrive())
        .on(argvContains("rsync"), Reply.ok(), argv -> arrive());
    srcImages = new FakeImageTool(images);
    start(src, srcHv, srcImages, srcRunner);
    start(dst, dstHv, dstImages, dstRunner);
  }

  /** The journal of {@code host}, read as its agent reads it. */
  MigrationJournal journal(String host) {
    return new FileMigrationJournal(
        root(host).resolve("journal"), new ObjectMapper().findAndRegisterModules());
  }

  /** What {@code find DIR -type f -printf "%b %p\\n"} prints on {@code host}. */
  Reply listFiles(String host, String dir) {
    Path local = root(host).resolve(dir.substring(1));
    if (!Files.exists(local)) {
      return Reply.ok();
    }
    try (var walk = Files.walk(local)) {
      return Reply.ok(
          walk.filter(Files::isRegularFile)
              .map(f -> "8 /" + root(host).relativize(f))
              .toArray(String[]::new));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  void arrive() {
    try {
      Path file = root(dst).resolve("ds0/vm1/disk.0");
      if (Files.isDirectory(file.getParent()) && !Files.exists(file)) {
        Files.writeString(file, "qcow2 bytes");
        qemuFds.add(FileChannel.open(file, StandardOpenOption.READ));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  void start(String host, FakeHypervisor hv, FakeImageTool imageTool, ScriptedProcessRunner runner)
      throws IOException {
    Path run = Files.createDirectories(root(host).resolve("run"));
    // the destination's "QEMU" is this JVM: its pid file, and the fds opened in arrive()
    Files.writeString(run.resolve(VM + ".pid"), Long.toString(ProcessHandle.current().pid()));
    NodeSettings settings =
        NodeSettings.from(
            ConfigFactory.parseString(
                    "ferry.node { host = "
                        + host
                        + ", datastores = [\""
                        + DS
                        + "\"], qemu-run-dir = \""
                        + run
                        + "\" }")
                .withFallback(ConfigFactory.parseString(extraConfig))
                .withFallback(CONFIG));
    HostPorts services =
        new HostPorts(
            hv,
            imageTool,
            runner,
            new DatastorePaths(List.of(Path.of(DS))),
            new OpenFiles(run),
            failing(
                host,
                new FileMigrationJournal(
                    root(host).resolve("journal"), new ObjectMapper().findAndRegisterModules())),
            settings,
            blocking,
            new HostFiles(root(host)),
            cloud::host);
    agents.add(testKit.spawn(AgentGuardian.create(services), "agent-" + host));
    testKit
        .createTestProbe()
        .awaitAssert(
            () -> {
              assertFalse(listed(host).isEmpty(), host + "'s agent is not listed yet");
              return null;
            });
  }

  /** Settings for the agents started from now on (reset before each test). */
  String extraConfig = "";

  /**
   * Stops the agent of {@code host} as a crash would (its migration actors end without a word) and
   * starts a new one, which runs its recovery.
   */
  void restartAgent(
      String host, FakeHypervisor hv, FakeImageTool imageTool, ScriptedProcessRunner runner)
      throws IOException {
    ActorRef<AgentProtocol.Command> old = agent(host);
    for (int i = agents.size() - 1; i >= 0; i--) {
      if (agents.get(i).path().name().equals("agent-" + host)) {
        testKit.stop(agents.remove(i));
      }
    }
    testKit
        .createTestProbe()
        .awaitAssert(
            () -> {
              assertFalse(listed(host).contains(old), "the stopped agent is still listed");
              return null;
            });
    start(host, hv, imageTool, runner);
  }

  /** The source's appends of these records fail, as on a full disk. */
  volatile Predicate<JournalEntry> sourceJournalFails = e -> false;

  MigrationJournal failing(String host, MigrationJournal journal) {
    return new MigrationJournal() {
      @Override
      public void append(String migrationId, Role role, JournalEntry entry) {
        if (host.equals(src) && sourceJournalFails.test(entry)) {
          throw new JournalException(
              "No space left on device", new IOException("No space left on device"));
        }
        journal.append(migrationId, role, entry);
      }

      @Override
      public List<JournalEntry> read(String migrationId, Role role) {
        return journal.read(migrationId, role);
      }

      @Override
      public List<String> unfinished(Role role) {
        return journal.unfinished(role);
      }

      @Override
      public List<String> all(Role role) {
        return journal.all(role);
      }
    };
  }

  ActorRef<AgentProtocol.Command> agent(String host) {
    return listed(host).iterator().next();
  }

  /** The agents of {@code host} the Receptionist lists now. */
  java.util.Set<ActorRef<AgentProtocol.Command>> listed(String host) {
    TestProbe<Receptionist.Listing> probe = testKit.createTestProbe();
    testKit
        .system()
        .receptionist()
        .tell(Receptionist.find(AgentProtocol.agentKey(host), probe.getRef()));
    return probe.receiveMessage().getServiceInstances(AgentProtocol.agentKey(host));
  }

  static MigrationOptions rsyncFinal() {
    return MigrationOptions.defaults()
        .withStrategy(MigrationStrategy.SUSPEND_SYNC)
        .withFinalSync(FinalSyncMethod.RSYNC);
  }

  /** Runs until the result arrives, letting manual time pass for timers (job polls, retries). */
  Outcome run(String id, MigrationOptions options) {
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(src).tell(new AgentProtocol.StartMigration(id, VM, dst, options, events.getRef()));
    return await(events);
  }

  record Outcome(MigrationResult result, List<MigrationPhase> phases) {}

  Outcome await(TestProbe<MigrationEvent> events) {
    Set<MigrationPhase> phases = new LinkedHashSet<>();
    for (int i = 0; i < 600; i++) {
      MigrationEvent e = pollOne(events);
      if (e == null) {
        manualTime.timePasses(Duration.ofMillis(200));
        continue;
      }
      if (e instanceof MigrationEvent.Progress p) {
        phases.add(p.progress().phase());
      } else if (e instanceof MigrationEvent.Finished f) {
        return new Outcome(f.result(), new ArrayList<>(phases));
      }
    }
    throw new AssertionError("no result; phases so far " + phases);
  }

  /** Waits for progress in {@code phase} whose message starts with {@code message}. */
  static void awaitPhase(TestProbe<MigrationEvent> events, MigrationPhase phase, String message) {
    events.fishForMessage(
        Duration.ofSeconds(20),
        e ->
            e instanceof MigrationEvent.Progress p
                    && p.progress().phase() == phase
                    && p.progress().message().startsWith(message)
                ? org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes.complete()
                : org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes.continueAndIgnore());
  }

  static MigrationEvent pollOne(TestProbe<MigrationEvent> events) {
    try {
      return events.receiveMessage(Duration.ofMillis(100));
    } catch (AssertionError timeout) {
      return null;
    }
  }

  static MigrationOptions overlay() {
    return MigrationOptions.defaults().withStrategy(dev.ferry.protocol.MigrationStrategy.OVERLAY);
  }

  static MigrationOptions cold() {
    return MigrationOptions.defaults().withStrategy(MigrationStrategy.COLD);
  }
}
