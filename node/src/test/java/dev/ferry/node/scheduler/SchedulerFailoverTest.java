package dev.ferry.node.scheduler;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.ferry.node.settings.FerryConfig;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.SchedulerProtocol;
import dev.ferry.protocol.SchedulerProtocol.JobReply;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import java.time.Duration;
import java.util.UUID;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Join;
import org.apache.pekko.cluster.typed.Leave;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Two cluster members in one JVM, sharing one journal: the scheduler singleton runs on the oldest;
 * when that member leaves, the other takes over, recovers the queue and the running job from the
 * journal, and asks the agent about the running job again.
 */
class SchedulerFailoverTest {
  private ActorTestKit first;
  private ActorTestKit second;

  private static Config config(String db) {
    return FerryConfig.load(
        ConfigFactory.parseString(
            """
            pekko.remote.artery.canonical.hostname = "127.0.0.1"
            pekko.remote.artery.canonical.port = 0
            pekko.cluster.seed-nodes = []
            pekko.cluster.jmx.multi-mbeans-in-same-jvm = on
            pekko.coordinated-shutdown.exit-jvm = off
            pekko.coordinated-shutdown.terminate-actor-system = on
            pekko.loglevel = WARNING
            ferry.scheduler.inventory.interval = 200ms
            ferry.scheduler.journal.url = "jdbc:h2:mem:%s;DB_CLOSE_DELAY=-1"
            """
                .formatted(db)));
  }

  @AfterEach
  void stop() {
    if (second != null) {
      second.shutdownTestKit();
    }
    if (first != null) {
      first.shutdownTestKit();
    }
  }

  @Test
  void theSingletonMovesAndRecoversTheQueue() {
    Config c = config("failover-" + UUID.randomUUID());
    SchedulerJournal.createSchema(c);
    first = ActorTestKit.create("ferry", c);
    Cluster a = Cluster.get(first.system());
    a.manager().tell(Join.create(a.selfMember().address()));
    second = ActorTestKit.create("ferry", c);
    Cluster b = Cluster.get(second.system());
    b.manager().tell(Join.create(a.selfMember().address()));
    await()
        .atMost(Duration.ofSeconds(20))
        .until(() -> b.selfMember().status() == MemberStatus.up());

    SchedulerSettings settings = SchedulerSettings.from(c).withCaps(1, 2, 8);
    Scheduler.init(first.system(), settings);
    ActorRef<SchedulerProtocol.Command> proxy = Scheduler.init(second.system(), settings);
    // the agents live on the member that stays
    FakeAgent host1 = new FakeAgent(second, "host1");
    new FakeAgent(second, "host2");
    host1.run("a", "b");

    String ja = submit(proxy, "a");
    String jb = submit(proxy, "b");
    AgentProtocol.StartMigration running = host1.starts.receiveMessage(Duration.ofSeconds(10));
    assertEquals(ja, running.migrationId());

    // the oldest member, which runs the singleton, leaves the cluster
    a.manager().tell(Leave.create(a.selfMember().address()));
    AgentProtocol.StartMigration resent = host1.starts.receiveMessage(Duration.ofSeconds(30));
    assertEquals(
        ja, resent.migrationId(), "the new singleton asks the agent about the running job");
    host1.finish(resent, MigrationOutcome.COMPLETED);
    assertEquals(jb, host1.starts.receiveMessage(Duration.ofSeconds(10)).migrationId());
    TestProbe<JobReply> probe = second.createTestProbe(JobReply.class);
    await()
        .atMost(Duration.ofSeconds(10))
        .ignoreExceptions()
        .until(
            () -> {
              proxy.tell(new SchedulerProtocol.GetJob(ja, probe.ref()));
              return probe.receiveMessage(Duration.ofSeconds(5)).job().state()
                  == JobState.COMPLETED;
            });
  }

  private String submit(ActorRef<SchedulerProtocol.Command> proxy, String vm) {
    TestProbe<JobReply> probe = second.createTestProbe(JobReply.class);
    return await()
        .atMost(Duration.ofSeconds(20))
        .pollInterval(Duration.ofMillis(200))
        .ignoreExceptions()
        .until(
            () -> {
              proxy.tell(
                  new SchedulerProtocol.Submit(
                      new MigrationRequest(
                          vm,
                          "host1",
                          "host2",
                          MigrationOptions.defaults(),
                          Priority.REQUEST,
                          "api"),
                      "",
                      probe.ref()));
              JobReply r = probe.receiveMessage(Duration.ofSeconds(5));
              return r.error() == null ? r.job().id() : null;
            },
            id -> id != null);
  }
}
