package dev.ferry.api;

import com.typesafe.config.Config;
import dev.ferry.node.NodeAgent;
import dev.ferry.node.management.ManagementServer;
import dev.ferry.node.scheduler.Scheduler;
import dev.ferry.node.scheduler.SchedulerJournal;
import dev.ferry.node.scheduler.SchedulerSettings;
import dev.ferry.node.settings.FerryConfig;
import dev.ferry.node.settings.NodeSettings;
import dev.ferry.protocol.SchedulerProtocol;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.management.cluster.bootstrap.ClusterBootstrap;
import org.apache.pekko.management.javadsl.PekkoManagement;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The deployable Ferry node: the host's agent, a share of the cluster's scheduler singleton, and
 * the HTTP API. Configuration: {@code reference.conf} of each module plus an overlay ({@code
 * -Dconfig.file=...}, see {@code config/}).
 */
public final class FerryServer {
  private static final Logger log = LoggerFactory.getLogger(FerryServer.class);

  /** Printed once the API serves; harnesses wait for it. */
  public static final String API_READY = "FERRY-API-READY";

  private FerryServer() {}

  public static void main(String[] args) {
    ActorSystem<Void> system = start(FerryConfig.exitingTheJvm(FerryConfig.load()));
    Runtime.getRuntime().addShutdownHook(new Thread(system::terminate, "ferry-shutdown"));
  }

  /** Starts a node with a configuration from {@link FerryConfig}. */
  public static ActorSystem<Void> start(Config config) {
    NodeSettings node = NodeSettings.from(config);
    SchedulerSettings scheduler = SchedulerSettings.from(config);
    ApiSettings api = ApiSettings.from(config);
    if (hostsScheduler(config, scheduler)) {
      // fail here, with the URL in the message, rather than in a restart loop later
      SchedulerJournal.createSchema(config);
    }
    boolean agent = config.getBoolean("ferry.server.agent");
    String formation = config.getString("ferry.cluster.formation");
    if (!List.of("seed-nodes", "kubernetes-api").contains(formation)) {
      throw new IllegalArgumentException(
          "ferry.cluster.formation must be seed-nodes or kubernetes-api, not " + formation);
    }
    ActorSystem<Void> system =
        ActorSystem.create(root(node, agent, scheduler, api), "ferry", config);
    if (formation.equals("kubernetes-api")) {
      // Pekko Management's HTTP port serves the bootstrap's contact point; the bootstrap lists
      // the pods through the Kubernetes API and joins (or, lowest address, forms) the cluster
      PekkoManagement.get(system).start();
      ClusterBootstrap.get(system).start();
      log.info("cluster formation: bootstrap through the Kubernetes API");
    }
    ManagementServer.startIfEnabled(
        system,
        config,
        // init is idempotent: the same proxy the root behaviour got
        SchedulerMetrics.source(system, Scheduler.init(system, scheduler), api.askTimeout()));
    return system;
  }

  private static boolean hostsScheduler(Config config, SchedulerSettings s) {
    return s.role().isEmpty() || config.getStringList("pekko.cluster.roles").contains(s.role());
  }

  static Behavior<Void> root(
      NodeSettings node, boolean agent, SchedulerSettings sched, ApiSettings api) {
    return Behaviors.setup(
        ctx -> {
          if (agent) {
            ctx.spawn(NodeAgent.root(node), "node");
          } else {
            log.info("control node: no agent on this host (ferry.server.agent = off)");
          }
          ActorRef<SchedulerProtocol.Command> scheduler = Scheduler.init(ctx.getSystem(), sched);
          if (api.enabled()) {
            bind(ctx.getSystem(), scheduler, api);
          }
          return Behaviors.empty();
        });
  }

  static void bind(
      ActorSystem<?> system, ActorRef<SchedulerProtocol.Command> scheduler, ApiSettings api) {
    if (!api.tokenRequired()) {
      log.warn("ferry.api.auth.mode = none: the API accepts requests without a token");
    }
    HostDirectory hosts = new HostDirectory(system, scheduler, api.hostsRefresh());
    Cluster cluster = Cluster.get(system);
    FerryRoutes routes =
        new FerryRoutes(
            system,
            scheduler,
            api,
            hosts,
            () -> cluster.selfMember().status() == MemberStatus.up());
    var server =
        Http.get(system)
            .newServerAt(api.iface(), api.port())
            .adaptSettings(FerryRoutes::serverSettings);
    if (api.tls()) {
      server = server.enableHttps(ApiTls.server(api.tlsKeyFile(), api.tlsCertFile()));
    }
    server
        .bind(routes.routes())
        .whenComplete(
            (ServerBinding b, Throwable err) -> {
              if (err != null) {
                log.error("cannot bind the API to {}:{}", api.iface(), api.port(), err);
                system.terminate();
              } else {
                System.out.println(API_READY + " " + b.localAddress());
                log.info("{} {}", API_READY, b.localAddress());
              }
            });
  }
}
