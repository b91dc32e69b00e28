package dev.ferry.node.testbed;

import dev.ferry.node.client.ClusterClient;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.javadsl.Adapter;

/** The agents of the test bed's hosts and a client in the root namespace, as one cluster. */
public final class Cluster implements AutoCloseable {
  private final Testbed bed;
  private final Map<String, AgentProcess> agents = new LinkedHashMap<>();
  private ClusterClient client;

  private Cluster(Testbed bed) {
    this.bed = bed;
  }

  /** Starts an agent on each host (host1 is the seed) and joins a client. */
  public static Cluster start(Testbed bed, String extraConfig, String... hosts) {
    Cluster c = new Cluster(bed);
    for (String h : hosts) {
      AgentProcess a = new AgentProcess(bed, h, extraConfig);
      c.agents.put(h, a);
      a.start(hosts[0]);
    }
    for (AgentProcess a : c.agents.values()) {
      a.awaitReady(Duration.ofSeconds(90));
    }
    // the same downing timing as the agents (AgentProcess.overlay): a member whose
    // stable-after is longer than the others' lets them see "instability" and down everyone
    // when it is the leader that has to decide
    c.client =
        ClusterClient.join(
            bed.rootIp(),
            List.of(bed.ip(hosts[0]) + ":" + AgentProcess.PORT),
            com.typesafe.config.ConfigFactory.parseString(
                "pekko.cluster.split-brain-resolver.stable-after = 5s\n"
                    + bed.tlsConfig("tb-root")));
    for (String h : hosts) {
      c.client.agent(h, Duration.ofSeconds(60));
    }
    return c;
  }

  public ClusterClient client() {
    return client;
  }

  public AgentProcess agent(String host) {
    return agents.get(host);
  }

  /** Starts the agent of {@code host} again (after a stop or a kill) and waits until it serves. */
  public void restart(String host) {
    AgentProcess a = agents.get(host);
    String seed = agents.keySet().stream().filter(h -> !h.equals(host)).findFirst().orElse(host);
    a.start(seed);
    a.awaitReady(Duration.ofSeconds(90));
    awaitSettled();
  }

  /**
   * Until every member is Up, none is unreachable and all have seen the same membership: a new
   * incarnation that just said it is up may not be Up in every other node's view yet, and a watch
   * set from there on one of its actors ended at once (seen on the test bed: a retry right after an
   * agent's restart lost its destination in its first second).
   */
  private void awaitSettled() {
    var classic = org.apache.pekko.cluster.Cluster.get(Adapter.toClassic(client.system()));
    org.awaitility.Awaitility.await()
        .atMost(Duration.ofSeconds(60))
        .pollInterval(Duration.ofMillis(200))
        .until(
            () -> {
              var state = classic.state();
              java.util.List<org.apache.pekko.cluster.Member> members = new java.util.ArrayList<>();
              state.getMembers().forEach(members::add);
              return state.getUnreachable().isEmpty()
                  && members.size() == agents.size() + 1
                  && members.stream()
                      .allMatch(m -> m.status() == org.apache.pekko.cluster.MemberStatus.up())
                  && state.getSeenBy().size() == members.size();
            });
  }

  /** Restarts the agent of {@code host} with another configuration overlay. */
  public void restart(String host, String extraConfig) {
    agents.get(host).stop();
    agents.put(host, new AgentProcess(bed, host, extraConfig));
    restart(host);
  }

  @Override
  public void close() {
    if (client != null) {
      client.close();
    }
    agents.values().forEach(AgentProcess::stop);
  }
}
