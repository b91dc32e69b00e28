package dev.ferry.node.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

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
import java.sql.Connection;
import java.sql.DriverManager;
import java.time.Duration;
import java.util.UUID;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The scheduler on the PostgreSQL journal a real cluster uses ({@code config/cluster.conf}): schema
 * creation that can run at every start, and a restart that recovers the queue, the running job and
 * a drain. Needs the database {@code scripts/test-postgres.sh} prepares; without it the test fails
 * rather than skipping, because a skipped test proves nothing.
 */
class SchedulerPostgresIT {
  private String schema;
  private String url;
  private String user;
  private String password;
  private ActorTestKit kit;

  @BeforeEach
  void schema() throws Exception {
    String base = System.getenv("FERRY_TEST_POSTGRES_URL");
    assertNotNull(base, "FERRY_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts one)");
    user = System.getenv("FERRY_TEST_POSTGRES_USER");
    password = System.getenv("FERRY_TEST_POSTGRES_PASSWORD");
    // a schema of its own per run: the database outlives the run, the journal must not
    schema = "t_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    try (Connection c = DriverManager.getConnection(base, user, password)) {
      c.createStatement().execute("CREATE SCHEMA " + schema);
    }
    url = base + "?currentSchema=" + schema;
  }

  @AfterEach
  void drop() throws Exception {
    if (kit != null) {
      kit.shutdownTestKit();
    }
    try (Connection c =
        DriverManager.getConnection(System.getenv("FERRY_TEST_POSTGRES_URL"), user, password)) {
      c.createStatement().execute("DROP SCHEMA " + schema + " CASCADE");
    }
  }

  private Config config() {
    Config c =
        FerryConfig.load(
            ConfigFactory.parseString(
                """
                    pekko.actor.provider = local
                    ferry.scheduler.inventory.interval = 100ms
                    ferry.scheduler.snapshot-every = 3
                    ferry.scheduler.journal.url = "%s"
                    ferry.scheduler.journal.user = "%s"
                    ferry.scheduler.journal.password = "%s"
                    """
                    .formatted(url, user, password)));
    assertEquals(
        "slick.jdbc.PostgresProfile$",
        c.getString("pekko-persistence-jdbc.shared-databases.ferry.profile"));
    return c;
  }

  @Test
  void aRestartedSchedulerRecoversFromPostgres() throws InterruptedException {
    Config c = config();
    SchedulerJournal.createSchema(c);
    SchedulerJournal.createSchema(c); // every start runs it: it must be idempotent
    kit = ActorTestKit.create(c);
    FakeAgent host1 = new FakeAgent(kit, "host1");
    new FakeAgent(kit, "host2");
    host1.run("a", "b", "c");
    SchedulerSettings settings = SchedulerSettings.from(c).withCaps(1, 2, 8);

    ActorRef<SchedulerProtocol.Command> first =
        kit.spawn(Scheduler.create(settings, System::currentTimeMillis), "first");
    String a = submit(first, "a");
    String b = submit(first, "b");
    AgentProtocol.StartMigration running = host1.starts.receiveMessage(Duration.ofSeconds(10));
    assertEquals(a, running.migrationId());
    kit.stop(first);

    ActorRef<SchedulerProtocol.Command> second =
        kit.spawn(Scheduler.create(settings, System::currentTimeMillis), "second");
    AgentProtocol.StartMigration resent = host1.starts.receiveMessage(Duration.ofSeconds(10));
    assertEquals(a, resent.migrationId(), "the running job is asked for again after recovery");
    assertEquals(JobState.QUEUED, job(second, b).state());
    host1.finish(resent, MigrationOutcome.COMPLETED);
    assertEquals(b, host1.starts.receiveMessage(Duration.ofSeconds(10)).migrationId());
    assertEquals(JobState.COMPLETED, awaitEnd(second, a).state());
  }

  private String submit(ActorRef<SchedulerProtocol.Command> s, String vm) {
    TestProbe<JobReply> probe = kit.createTestProbe(JobReply.class);
    long end = System.currentTimeMillis() + 10_000;
    while (true) {
      s.tell(
          new SchedulerProtocol.Submit(
              new MigrationRequest(
                  vm, "host1", "host2", MigrationOptions.defaults(), Priority.REQUEST, "api"),
              "",
              probe.ref()));
      JobReply r = probe.receiveMessage(Duration.ofSeconds(10));
      if (r.error() == null) {
        return r.job().id();
      }
      if (System.currentTimeMillis() > end) {
        throw new AssertionError(r.error().message());
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        throw new AssertionError(e);
      }
    }
  }

  private SchedulerProtocol.JobView job(ActorRef<SchedulerProtocol.Command> s, String id) {
    TestProbe<JobReply> probe = kit.createTestProbe(JobReply.class);
    s.tell(new SchedulerProtocol.GetJob(id, probe.ref()));
    JobReply r = probe.receiveMessage(Duration.ofSeconds(10));
    assertNull(r.error());
    return r.job();
  }

  private SchedulerProtocol.JobView awaitEnd(ActorRef<SchedulerProtocol.Command> s, String id)
      throws InterruptedException {
    long end = System.currentTimeMillis() + 10_000;
    SchedulerProtocol.JobView v = job(s, id);
    while (!v.state().terminal() && System.currentTimeMillis() < end) {
      Thread.sleep(50);
      v = job(s, id);
    }
    return v;
  }
}
