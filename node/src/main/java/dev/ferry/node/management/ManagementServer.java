package dev.ferry.node.management;

import static org.apache.pekko.http.javadsl.server.Directives.complete;
import static org.apache.pekko.http.javadsl.server.Directives.concat;
import static org.apache.pekko.http.javadsl.server.Directives.get;
import static org.apache.pekko.http.javadsl.server.Directives.onSuccess;
import static org.apache.pekko.http.javadsl.server.Directives.path;
import static org.apache.pekko.http.javadsl.server.Directives.pathPrefix;

import com.typesafe.config.Config;
import dev.ferry.node.agent.AgentStatus;
import dev.ferry.node.metrics.EngineMetrics;
import dev.ferry.node.metrics.MetricsSource;
import dev.ferry.node.metrics.MetricsText;
import java.util.concurrent.CompletionStage;
import java.util.function.BooleanSupplier;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.Route;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A node's management port: {@code GET /health/live} (the process serves), {@code GET
 * /health/ready} (an Up cluster member whose agent recovered and is not stopping) and {@code GET
 * /metrics} (Prometheus text format: this agent's counters, then what the extra source adds, such
 * as the scheduler's gauges). It carries no secrets and no VM data, so it needs no token;
 * Kubernetes probes and Prometheus use it. It is Ferry's own, on every node whatever the cluster
 * formation; Pekko Management's port serves only the Kubernetes bootstrap, where that is used.
 */
public final class ManagementServer {
  private static final Logger log = LoggerFactory.getLogger(ManagementServer.class);

  /** Printed once the port is bound; harnesses read the address from it. */
  public static final String READY = "FERRY-MANAGEMENT-READY";

  private ManagementServer() {}

  /**
   * Binds the port. A port that cannot be bound is logged as an error and the node keeps running:
   * migrations matter more than probes (Kubernetes restarts a pod whose probes fail anyway).
   */
  public static CompletionStage<ServerBinding> start(
      ActorSystem<?> system,
      ManagementSettings settings,
      BooleanSupplier ready,
      MetricsSource extra) {
    Route routes = routes(system, ready, extra);
    return Http.get(system)
        .newServerAt(settings.iface(), settings.port())
        .bind(routes)
        .whenComplete(
            (b, err) -> {
              if (err != null) {
                log.error(
                    "cannot bind the management port {}:{}",
                    settings.iface(),
                    settings.port(),
                    err);
              } else {
                System.out.println(READY + " " + b.localAddress());
                log.info("{} {}", READY, b.localAddress());
              }
            });
  }

  /**
   * Starts the port if {@code ferry.management.enabled}, ready when this node is an Up cluster
   * member: what every deployable node does.
   */
  public static void startIfEnabled(ActorSystem<?> system, Config config, MetricsSource extra) {
    ManagementSettings settings = ManagementSettings.from(config);
    if (settings.enabled()) {
      start(system, settings, clusterMemberUp(system), extra);
    }
  }

  /**
   * Ready: this node is an Up member of the cluster and its agent (if it has one) has finished its
   * recovery and is not stopping, so it can take and run migrations.
   */
  public static BooleanSupplier clusterMemberUp(ActorSystem<?> system) {
    Cluster cluster = Cluster.get(system);
    AgentStatus agent = AgentStatus.get(system);
    return () -> cluster.selfMember().status() == MemberStatus.up() && agent.ready();
  }

  static Route routes(ActorSystem<?> system, BooleanSupplier ready, MetricsSource extra) {
    return get(
        () ->
            concat(
                pathPrefix(
                    "health",
                    () ->
                        concat(
                            path("live", () -> complete(StatusCodes.OK, "live")),
                            path(
                                "ready",
                                () ->
                                    ready.getAsBoolean()
                                        ? complete(StatusCodes.OK, "ready")
                                        : complete(
                                            StatusCodes.SERVICE_UNAVAILABLE,
                                            "not an Up cluster member yet")))),
                path(
                    "metrics",
                    () -> {
                      MetricsText text = new MetricsText();
                      EngineMetrics.get(system).writeTo(text);
                      return onSuccess(
                          extra.appendTo(text),
                          done ->
                              complete(
                                  HttpEntities.create(
                                      ContentTypes.TEXT_PLAIN_UTF8, text.toString())));
                    })));
  }
}
