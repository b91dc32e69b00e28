package dev.ferry.node.client;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationResult;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * A cluster member with the role {@code client} that talks to agents directly: starts, watches and
 * cancels migrations. The end-to-end tests and the benchmark drive migrations through it.
 */
public final class ClusterClient implements AutoCloseable {
  private final ActorSystem<Void> system;
  private final AtomicInteger collectors = new AtomicInteger();

  private ClusterClient(ActorSystem<Void> system) {
    this.system = system;
  }

  /**
   * Joins the cluster whose seed is {@code seedAddress} (host:port), listening on {@code bindHost}.
   */
  public static ClusterClient join(String bindHost, List<String> seeds) {
    return join(bindHost, seeds, ConfigFactory.empty());
  }

  public static ClusterClient join(String bindHost, List<String> seeds, Config extra) {
    Config config =
        extra
            .withValue(
                "pekko.remote.artery.canonical.hostname", ConfigValueFactory.fromAnyRef(bindHost))
            .withValue("pekko.remote.artery.canonical.port", ConfigValueFactory.fromAnyRef(0))
            .withValue("pekko.cluster.roles", ConfigValueFactory.fromIterable(List.of("client")))
            .withValue(
                "pekko.cluster.seed-nodes",
                ConfigValueFactory.fromIterable(
                    seeds.stream().map(s -> "pekko://ferry@" + s).toList()));
    config = dev.ferry.node.settings.FerryConfig.load(config);
    return new ClusterClient(ActorSystem.create(Behaviors.empty(), "ferry", config));
  }

  public ActorSystem<Void> system() {
    return system;
  }

  /** The agent of {@code host}, waiting up to {@code timeout} for it to register. */
  public ActorRef<AgentProtocol.Command> agent(String host, Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      Receptionist.Listing listing =
          AskPattern.<Receptionist.Command, Receptionist.Listing>ask(
                  system.receptionist(),
                  ref -> Receptionist.find(AgentProtocol.agentKey(host), ref),
                  Duration.ofSeconds(5),
                  system.scheduler())
              .toCompletableFuture()
              .join();
      Set<ActorRef<AgentProtocol.Command>> agents =
          listing.getServiceInstances(AgentProtocol.agentKey(host));
      if (!agents.isEmpty()) {
        return agents.iterator().next();
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("no agent registered for " + host + " within " + timeout);
      }
      sleep(200);
    }
  }

  /** A migration in flight as seen from here: every event, and the result when it comes. */
  public static final class Run {
    public final String migrationId;
    public final List<MigrationEvent> events = new CopyOnWriteArrayList<>();
    public final CompletableFuture<MigrationResult> result = new CompletableFuture<>();

    Run(String migrationId) {
      this.migrationId = migrationId;
    }

    /** The result, waiting at most {@code timeout}. */
    public MigrationResult await(Duration timeout) {
      try {
        return result.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      } catch (Exception e) {
        throw new IllegalStateException(
            "migration "
                + migrationId
                + " did not finish within "
                + timeout
                + "; last events "
                + tail(),
            e);
      }
    }

    public List<MigrationEvent> tail() {
      int n = events.size();
      return events.subList(Math.max(0, n - 3), n);
    }
  }

  /** Starts a migration of {@code vm} on {@code source} to {@code destination}. */
  public Run migrate(
      String migrationId,
      String vm,
      String source,
      String destination,
      MigrationOptions options,
      Consumer<MigrationEvent> onEvent) {
    Run run = new Run(migrationId);
    ActorRef<MigrationEvent> collector = collector(run, onEvent);
    agent(source, Duration.ofSeconds(60))
        .tell(new AgentProtocol.StartMigration(migrationId, vm, destination, options, collector));
    return run;
  }

  /** Watches a migration (already running or ended) on {@code source}. */
  public Run watch(String migrationId, String source, Consumer<MigrationEvent> onEvent) {
    Run run = new Run(migrationId);
    agent(source, Duration.ofSeconds(60))
        .tell(new AgentProtocol.WatchMigration(migrationId, collector(run, onEvent)));
    return run;
  }

  private ActorRef<MigrationEvent> collector(Run run, Consumer<MigrationEvent> onEvent) {
    return system.systemActorOf(
        Behaviors.receive(MigrationEvent.class)
            .onAnyMessage(
                e -> {
                  run.events.add(e);
                  onEvent.accept(e);
                  if (e instanceof MigrationEvent.Finished f) {
                    run.result.complete(f.result());
                    return Behaviors.stopped();
                  }
                  if (e instanceof MigrationEvent.Rejected r) {
                    run.result.completeExceptionally(new IllegalArgumentException(r.reason()));
                    return Behaviors.stopped();
                  }
                  if (e instanceof MigrationEvent.Unknown u) {
                    run.result.completeExceptionally(new IllegalArgumentException(u.message()));
                    return Behaviors.stopped();
                  }
                  return Behaviors.same();
                })
            .build(),
        "collector-" + run.migrationId + "-" + collectors.incrementAndGet(),
        Props.empty());
  }

  public AgentProtocol.CancelReply cancel(String source, String migrationId, String reason) {
    return AskPattern.<AgentProtocol.Command, AgentProtocol.CancelReply>ask(
            agent(source, Duration.ofSeconds(30)),
            ref -> new AgentProtocol.CancelMigration(migrationId, reason, ref),
            Duration.ofSeconds(30),
            system.scheduler())
        .toCompletableFuture()
        .join();
  }

  public HostInventory inventory(String host) {
    return AskPattern.<AgentProtocol.Command, HostInventory>ask(
            agent(host, Duration.ofSeconds(30)),
            AgentProtocol.GetInventory::new,
            Duration.ofSeconds(30),
            system.scheduler())
        .toCompletableFuture()
        .join();
  }

  /** Asks the agent on {@code host} to take an internal snapshot of a running VM. */
  public AgentProtocol.SnapshotReply createSnapshot(String host, String vm, String name) {
    return AskPattern.<AgentProtocol.Command, AgentProtocol.SnapshotReply>ask(
            agent(host, Duration.ofSeconds(30)),
            ref -> new AgentProtocol.CreateSnapshot(vm, name, ref),
            Duration.ofMinutes(2),
            system.scheduler())
        .toCompletableFuture()
        .join();
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  @Override
  public void close() {
    system.terminate();
    try {
      system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    } catch (Exception e) {
      // shutting down anyway
    }
  }
}
