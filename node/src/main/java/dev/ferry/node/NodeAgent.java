package dev.ferry.node;

import com.typesafe.config.Config;
import dev.ferry.node.agent.AgentGuardian;
import dev.ferry.node.host.HostFiles;
import dev.ferry.node.host.OpenFiles;
import dev.ferry.node.image.QemuImgTool;
import dev.ferry.node.journal.FileMigrationJournal;
import dev.ferry.node.libvirt.LibvirtHypervisor;
import dev.ferry.node.management.ManagementServer;
import dev.ferry.node.metrics.MetricsSource;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.settings.NodeSettings;
import dev.ferry.node.validation.DatastorePaths;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.Executor;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.SelfUp;
import org.apache.pekko.cluster.typed.Subscribe;
import org.apache.pekko.serialization.jackson.JacksonObjectMapperProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node agent every hypervisor host runs: a Pekko Cluster member that registers this host's
 * migration engine with the Receptionist. Configuration: {@code reference.conf} plus an overlay
 * ({@code -Dconfig.file=...}).
 */
public final class NodeAgent {
  private static final Logger log = LoggerFactory.getLogger(NodeAgent.class);

  /** Printed once the agent is a cluster member and serves requests; harnesses wait for it. */
  public static final String READY = "FERRY-AGENT-READY";

  private NodeAgent() {}

  public static void main(String[] args) {
    Config config =
        dev.ferry.node.settings.FerryConfig.exitingTheJvm(
            dev.ferry.node.settings.FerryConfig.load());
    NodeSettings settings = NodeSettings.from(config);
    ActorSystem<Void> system = start(settings, config);
    Runtime.getRuntime().addShutdownHook(new Thread(system::terminate, "agent-shutdown"));
  }

  /** Starts an agent with the given settings and configuration. */
  public static ActorSystem<Void> start(NodeSettings settings, Config config) {
    ActorSystem<Void> system = ActorSystem.create(root(settings), "ferry", config);
    ManagementServer.startIfEnabled(system, config, MetricsSource.NONE);
    return system;
  }

  /**
   * On SIGTERM ({@code systemctl stop}, a pod deleted) or a leave, the agent takes no new migration
   * and waits up to {@code grace} for the running ones to end before the node goes; a migration
   * still running then is left to the journal, and the next start finishes or undoes it.
   */
  private static void finishMigrationsBeforeStopping(
      ActorSystem<?> system, ActorRef<AgentGuardian.Message> guardian, Duration grace) {
    CoordinatedShutdown.get(system)
        .addTask(
            CoordinatedShutdown.PhaseServiceRequestsDone(),
            "ferry-finish-migrations",
            () ->
                AskPattern.<AgentGuardian.Message, Done>ask(
                        guardian, AgentGuardian.FinishMigrations::new, grace, system.scheduler())
                    .exceptionally(
                        e -> {
                          log.warn(
                              "stopping with migrations still running after {} s; their journals"
                                  + " finish or undo them at the next start",
                              grace.toSeconds());
                          return Done.getInstance();
                        }));
  }

  /**
   * The first delta of a fresh agent paid 0.5 s of JIT warm-up inside a paused window on the test
   * bed; running the stream path a few times at start-up, on a scratch file, moves that here.
   */
  private static void warmUp(
      ActorSystem<?> system, LocalProcessRunner runner, NodeSettings settings, Executor blocking) {
    java.util.concurrent.CompletableFuture.runAsync(
        () -> {
          try {
            java.nio.file.Path scratch = java.nio.file.Files.createTempFile("ferry-warmup", ".bin");
            try {
              java.nio.file.Files.write(scratch, new byte[4 << 20]);
              dev.ferry.node.disksync.CopyPipelines p =
                  new dev.ferry.node.disksync.CopyPipelines(
                      runner,
                      settings,
                      org.apache.pekko.stream.Materializer.createMaterializer(system),
                      blocking);
              for (int i = 0; i < 20; i++) {
                p.warmUp(scratch).toCompletableFuture().join();
              }
            } finally {
              java.nio.file.Files.deleteIfExists(scratch);
            }
          } catch (java.io.IOException | RuntimeException e) {
            log.debug("warm-up skipped: {}", e.getMessage());
          }
        },
        blocking);
  }

  public static Behavior<Void> root(NodeSettings settings) {
    return Behaviors.setup(
        ctx -> {
          Executor blocking =
              ctx.getSystem()
                  .dispatchers()
                  .lookup(DispatcherSelector.fromConfig("ferry.blocking-dispatcher"));
          LocalProcessRunner runner = new LocalProcessRunner();
          LibvirtHypervisor hypervisor = new LibvirtHypervisor(settings.libvirtUri());
          HostPorts services =
              new HostPorts(
                  hypervisor,
                  new QemuImgTool(
                      runner, settings.tools().qemuImg(), settings.tools().commandTimeout()),
                  runner,
                  new DatastorePaths(settings.datastores()),
                  new OpenFiles(settings.qemuRunDir()),
                  new FileMigrationJournal(
                      settings.stateDir().resolve("journal"),
                      JacksonObjectMapperProvider.get(ctx.getSystem())
                          .getOrCreate("jackson-json", Optional.empty())),
                  settings,
                  blocking,
                  HostFiles.DIRECT,
                  host -> new LibvirtHypervisor(settings.migration().destinationUri(host)));
          ActorRef<AgentGuardian.Message> guardian =
              ctx.spawn(
                  AgentGuardian.create(services),
                  "agent",
                  DispatcherSelector.fromConfig("ferry.agent-dispatcher"));
          finishMigrationsBeforeStopping(ctx.getSystem(), guardian, settings.stopGrace());
          warmUp(ctx.getSystem(), runner, settings, blocking);
          Cluster cluster = Cluster.get(ctx.getSystem());
          ctx.spawn(
              Behaviors.<SelfUp>setup(
                  c -> {
                    cluster.subscriptions().tell(Subscribe.create(c.getSelf(), SelfUp.class));
                    return Behaviors.receiveMessage(
                        up -> {
                          // a signal for supervisors and harnesses, whatever the log level
                          System.out.println(READY + " host=" + settings.host());
                          log.info(
                              "{} host={} address={} libvirt={} datastores={}",
                              READY,
                              settings.host(),
                              cluster.selfMember().address(),
                              settings.libvirtUri(),
                              settings.datastores());
                          return Behaviors.same();
                        });
                  }),
              "ready-announcer");
          return Behaviors.receive(Void.class)
              .onSignal(
                  org.apache.pekko.actor.typed.PostStop.class,
                  s -> {
                    hypervisor.close();
                    runner.close();
                    return Behaviors.same();
                  })
              .build();
        });
  }
}
