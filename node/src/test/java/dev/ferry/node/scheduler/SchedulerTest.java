package dev.ferry.node.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.ferry.node.settings.FerryConfig;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.SchedulerProtocol;
import dev.ferry.protocol.SchedulerProtocol.DrainReply;
import dev.ferry.protocol.SchedulerProtocol.DrainVm;
import dev.ferry.protocol.SchedulerProtocol.ErrorKind;
import dev.ferry.protocol.SchedulerProtocol.JobReply;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

/**
 * The scheduler against fake agents, with a real event journal (H2 in memory): admission under
 * caps, idempotency, cancel, drains with retries, and recovery after the scheduler restarts.
 */
class SchedulerTest {
  /** One kit and one journal database for the class; each test has its own persistence id. */
  private static ActorTestKit kit;

  private static Config config;
  private SchedulerSettings settings;
  private FakeAgent host1;
  private FakeAgent host2;
  private FakeAgent host3;
  private PersistenceId persistenceId;
  private final List<ActorRef<SchedulerProtocol.Command>> schedulers = new ArrayList<>();

  static Config config(String db) {
    Config c =
        ConfigFactory.parseString(
            """
                pekko.actor.provider = local
                ferry.scheduler.inventory.interval = 100ms
                ferry.scheduler.inventory.stale-after = 10s
                ferry.scheduler.snapshot-every = 2
                ferry.scheduler.journal.url = "jdbc:h2:mem:%s;DB_CLOSE_DELAY=-1"
                """
                .formatted(db));
    Config configured = FerryConfig.load(c);
    SchedulerJournal.createSchema(configured);
    return configured;
  }

  @BeforeAll
  static void startKit() {
    config = config("sched-" + UUID.randomUUID());
    kit = ActorTestKit.create(config);
  }

  @AfterAll
  static void stopKit() {
    kit.shutdownTestKit();
  }

  @BeforeEach
  void start(TestInfo test) {
    persistenceId = PersistenceId.ofUniqueId("scheduler-" + test.getDisplayName());
    settings = SchedulerSettings.from(config).withCaps(2, 2, 8);
    host1 = new FakeAgent(kit, "host1");
    host2 = new FakeAgent(kit, "host2");
    host3 = new FakeAgent(kit, "host3");
  }

  /** Stops what the test started, so the next test's scheduler sees only its own agents. */
  @AfterEach
  void stop() {
    schedulers.forEach(kit::stop);
    for (FakeAgent agent : List.of(host1, host2, host3)) {
      kit.stop(agent.ref);
    }
  }

  /** The scheduler's clock: tests move it instead of waiting. */
  private final AtomicLong now = new AtomicLong(System.currentTimeMillis());

  private ActorRef<SchedulerProtocol.Command> scheduler(SchedulerSettings s, String name) {
    ActorRef<SchedulerProtocol.Command> ref =
        kit.spawn(Scheduler.create(s, now::get, persistenceId), name);
    schedulers.add(ref);
    return ref;
  }

  /** Asks until {@code check} passes (it throws AssertionError until then), within 5 s. */
  private <T> T eventually(java.util.function.Supplier<T> check) {
    return kit.createTestProbe()
        .awaitAssert(Duration.ofSeconds(5), Duration.ofMillis(50), check::get);
  }

  private SchedulerProtocol.DrainView drain(
      ActorRef<SchedulerProtocol.Command> sched,
      String id,
      TestProbe<SchedulerProtocol.DrainReply> probe) {
    sched.tell(new SchedulerProtocol.GetDrain(id, probe.ref()));
    return probe.receiveMessage().drain();
  }

  private JobReply submit(
      ActorRef<SchedulerProtocol.Command> sched, String vm, String src, String dst, String key) {
    TestProbe<JobReply> probe = kit.createTestProbe(JobReply.class);
    // the first inventories arrive within an interval: until then every host is unknown
    return awaitReply(
        () -> {
          sched.tell(
              new SchedulerProtocol.Submit(
                  new MigrationRequest(
                      vm, src, dst, MigrationOptions.defaults(), Priority.REQUEST, "api"),
                  key,
                  probe.ref()));
          return probe.receiveMessage(Duration.ofSeconds(5));
        });
  }

  private JobReply awaitReply(java.util.function.Supplier<JobReply> ask) {
    return eventually(
        () -> {
          JobReply r = ask.get();
          assertFalse(
              r.error() != null && r.error().message().startsWith("unknown host"),
              "no inventory yet");
          return r;
        });
  }

  private SchedulerProtocol.JobView job(ActorRef<SchedulerProtocol.Command> sched, String id) {
    TestProbe<JobReply> probe = kit.createTestProbe(JobReply.class);
    sched.tell(new SchedulerProtocol.GetJob(id, probe.ref()));
    JobReply r = probe.receiveMessage();
    assertNull(r.error(), () -> r.error().message());
    return r.job();
  }

  private SchedulerProtocol.JobView awaitState(
      ActorRef<SchedulerProtocol.Command> sched, String id, JobState state) {
    return eventually(
        () -> {
          SchedulerProtocol.JobView v = job(sched, id);
          assertEquals(state, v.state(), v.toString());
          return v;
        });
  }

  @Test
  void outboundCapHoldsAndAFinishedMigrationFreesItsSlotAtOnce() {
    host1.run("a", "b", "c");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings, "s1");
    String a = submit(sched, "a", "host1", "host2", "").job().id();
    String b = submit(sched, "b", "host1", "host3", "").job().id();
    String c = submit(sched, "c", "host1", "host2", "").job().id();
    AgentProtocol.StartMigration first = host1.starts.receiveMessage();
    AgentProtocol.StartMigration second = host1.starts.receiveMessage();
    assertEquals(Set.of(a, b), Set.of(first.migrationId(), second.migrationId()));
    host1.starts.expectNoMessage(Duration.ofMillis(500));
    SchedulerProtocol.JobView queued = job(sched, c);
    assertEquals(JobState.QUEUED, queued.state());
    assertTrue(queued.waitingFor().contains("outbound cap of host1"), () -> queued.waitingFor());

    // no timer frees a slot: only the end of a migration does
    host1.starts.expectNoMessage(Duration.ofSeconds(1));
    host1.finish(first, MigrationOutcome.COMPLETED);
    AgentProtocol.StartMigration third = host1.starts.receiveMessage();
    assertEquals(c, third.migrationId());
    assertEquals(
        JobState.COMPLETED, awaitState(sched, first.migrationId(), JobState.COMPLETED).state());
    // the fair share of a 1250 MB/s NIC with 2 streams, passed to the agent
    assertEquals(625_000_000L, third.options().bandwidthBytesPerSecond());
  }

  @Test
  void inboundCapCountsDestinationsAcrossSources() {
    host1.run("a", "b");
    host3.run("c");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings.withCaps(2, 1, 8), "s-inbound");
    submit(sched, "a", "host1", "host2", "");
    String c = submit(sched, "c", "host3", "host2", "").job().id();
    AgentProtocol.StartMigration first = host1.starts.receiveMessage();
    host3.starts.expectNoMessage(Duration.ofMillis(500));
    assertTrue(job(sched, c).waitingFor().contains("inbound cap of host2"));
    host1.finish(first, MigrationOutcome.ROLLED_BACK);
    assertEquals(c, host3.starts.receiveMessage().migrationId());
  }

  @Test
  void badRequestsAreRefusedWithAReason() {
    host1.run("a");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings, "s-bad");
    submit(sched, "a", "host1", "host2", "");
    JobReply twice = submit(sched, "a", "host1", "host3", "");
    assertEquals(ErrorKind.CONFLICT, twice.error().kind());
    JobReply same = submit(sched, "x", "host1", "host1", "");
    assertEquals(ErrorKind.INVALID, same.error().kind());
    JobReply absent = submit(sched, "nope", "host1", "host2", "");
    assertTrue(absent.error().message().contains("not running on host1"));
    JobReply shell = submit(sched, "a;rm -rf /", "host1", "host2", "");
    assertEquals(ErrorKind.INVALID, shell.error().kind());
  }

  @Test
  void theSameIdempotencyKeyGivesTheSameJob() {
    host1.run("a");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings, "s-idem");
    JobReply one = submit(sched, "a", "host1", "host2", "key-1");
    JobReply two = submit(sched, "a", "host1", "host2", "key-1");
    assertNull(two.error());
    assertEquals(one.job().id(), two.job().id());
    host1.starts.receiveMessage();
    host1.starts.expectNoMessage(Duration.ofMillis(300));
  }

  /**
   * OpenNebula names a VM by its domain UUID (the deploy id): the job is the VM's by libvirt name,
   * and a retry with the same key after the VM moved attaches to the same job.
   */
  @Test
  void aDomainUuidNamesTheVmAndARetryAfterTheMoveFindsTheJob() {
    String uuid = "7c1f0a52-3d4e-4b8a-9f21-6e5d4c3b2a19";
    host1.add(
        new dev.ferry.protocol.HostInventory.VmInfo("one-42", 1, 1L << 30, 2L << 30, true, uuid));
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings, "s-uuid");
    JobReply one =
        submit(sched, uuid.toUpperCase(java.util.Locale.ROOT), "host1", "host2", "one-42-1");
    assertNull(one.error(), () -> one.error().message());
    assertEquals("one-42", one.job().request().vm());
    AgentProtocol.StartMigration start = host1.starts.receiveMessage();
    assertEquals("one-42", start.vm());
    host1.remove("one-42");
    host2.add(
        new dev.ferry.protocol.HostInventory.VmInfo("one-42", 1, 1L << 30, 2L << 30, true, uuid));
    host1.finish(start, MigrationOutcome.COMPLETED);
    awaitState(sched, one.job().id(), JobState.COMPLETED);
    eventually(
        () -> {
          JobReply again = submit(sched, uuid, "host1", "host2", "one-42-1");
          assertNull(again.error(), () -> again.error().message());
          assertEquals(one.job().id(), again.job().id());
          return again;
        });
    host1.starts.expectNoMessage(Duration.ofMillis(300));
  }

  @Test
  void cancellingAQueuedJobEndsItAndARunningOneAsksTheAgent() {
    host1.run("a", "b", "c");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings.withCaps(1, 2, 8), "s-cancel");
    String a = submit(sched, "a", "host1", "host2", "").job().id();
    String b = submit(sched, "b", "host1", "host2", "").job().id();
    AgentProtocol.StartMigration running = host1.starts.receiveMessage();
    TestProbe<JobReply> probe = kit.createTestProbe(JobReply.class);
    sched.tell(new SchedulerProtocol.CancelJob(b, "operator", probe.ref()));
    assertEquals(JobState.CANCELLED, probe.receiveMessage().job().state());

    sched.tell(new SchedulerProtocol.CancelJob(a, "operator", probe.ref()));
    AgentProtocol.CancelMigration cancel = host1.cancels.receiveMessage();
    assertEquals(a, cancel.migrationId());
    cancel.replyTo().tell(new AgentProtocol.CancelReply(a, true, "rolling back"));
    assertEquals(JobState.RUNNING, probe.receiveMessage().job().state());
    host1.finish(running, MigrationOutcome.CANCELLED);
    awaitState(sched, a, JobState.CANCELLED);

    sched.tell(new SchedulerProtocol.CancelJob(a, "again", probe.ref()));
    assertEquals(ErrorKind.CONFLICT, probe.receiveMessage().error().kind());
  }

  @Test
  void driverRequestsGoBeforeDrainsAndRebalancing() {
    host1.run("d1", "d2", "r1");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings.withCaps(1, 2, 8), "s-prio");
    TestProbe<JobReply> probe = kit.createTestProbe(JobReply.class);
    submit(sched, "d1", "host1", "host2", "");
    AgentProtocol.StartMigration first = host1.starts.receiveMessage();
    sched.tell(
        new SchedulerProtocol.Submit(
            new MigrationRequest(
                "r1", "host1", "host3", MigrationOptions.defaults(), Priority.REBALANCE, "x"),
            "",
            probe.ref()));
    probe.receiveMessage();
    sched.tell(
        new SchedulerProtocol.Submit(
            new MigrationRequest(
                "d2", "host1", "host3", MigrationOptions.defaults(), Priority.REQUEST, "api"),
            "",
            probe.ref()));
    String d2 = probe.receiveMessage().job().id();
    host1.finish(first, MigrationOutcome.COMPLETED);
    assertEquals(d2, host1.starts.receiveMessage().migrationId());
  }

  @Test
  void aDrainPlacesEveryVmRetriesFailuresAndKeepsTheHostOut() {
    host1.run("a", "b", "c");
    host2.memoryBytes = 2L << 30; // room for one 1 GiB VM with the 256 MiB headroom, not two
    // host3 has the most room and takes two (its inbound cap), the third fits host2 only
    ActorRef<SchedulerProtocol.Command> sched =
        scheduler(
            settings
                .withCaps(3, 2, 8)
                .withLinks(new SchedulerSettings.LinkSpec(1_250_000_000L, 4), Map.of(), List.of()),
            "s-drain");
    submit(sched, "warm-up", "host1", "host2", ""); // waits for inventories; refused, harmless
    TestProbe<DrainReply> probe = kit.createTestProbe(DrainReply.class);
    sched.tell(
        new SchedulerProtocol.StartDrain(
            new SchedulerProtocol.DrainRequest("host1", 0, false, MigrationOptions.defaults()),
            probe.ref()));
    SchedulerProtocol.DrainView drain = probe.receiveMessage().drain();
    assertNotNull(drain, "drain started");
    assertEquals(3, drain.vms().size());

    Set<String> destinations = new HashSet<>();
    List<AgentProtocol.StartMigration> started =
        List.of(
            host1.starts.receiveMessage(),
            host1.starts.receiveMessage(),
            host1.starts.receiveMessage());
    started.forEach(s -> destinations.add(s.destination()));
    long onHost2 = started.stream().filter(s -> s.destination().equals("host2")).count();
    assertEquals(1, onHost2, "host2 has room for one VM only: " + started);
    assertTrue(destinations.contains("host3"));

    // one fails; it is tried again, the others complete
    host1.finish(started.get(0), MigrationOutcome.ROLLED_BACK);
    AgentProtocol.StartMigration retry = host1.starts.receiveMessage();
    assertEquals(started.get(0).vm(), retry.vm());
    host1.finish(started.get(1), MigrationOutcome.COMPLETED);
    host1.finish(started.get(2), MigrationOutcome.COMPLETED);
    host1.finish(retry, MigrationOutcome.COMPLETED);

    SchedulerProtocol.DrainView done =
        eventually(
            () -> {
              SchedulerProtocol.DrainView d = drain(sched, drain.id(), probe);
              assertEquals("completed", d.state(), d.toString());
              return d;
            });
    assertTrue(done.vms().stream().allMatch(v -> v.status().equals("moved")), done.toString());
    assertEquals(
        2, done.vms().stream().filter(v -> v.vm().equals(retry.vm())).findFirst().get().attempts());

    TestProbe<SchedulerProtocol.HostsReply> hosts =
        kit.createTestProbe(SchedulerProtocol.HostsReply.class);
    sched.tell(new SchedulerProtocol.GetHosts(hosts.ref()));
    assertEquals(
        "drained",
        hosts.receiveMessage().hosts().stream()
            .filter(h -> h.host().equals("host1"))
            .findFirst()
            .orElseThrow()
            .state());
  }

  /**
   * With cold fallback, a VM whose live attempts all rolled back is moved cold next, queued at the
   * drain's priority; a cold move that fails too is the end of it (never a second cold move), and a
   * VM whose last attempt left it somewhere else is never moved cold.
   */
  @Test
  void aDrainWithColdFallbackMovesAVmColdOnceItsLiveAttemptsRolledBack() {
    host1.run("a", "b");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings.withCaps(2, 2, 8), "s-cold");
    submit(sched, "warm-up", "host1", "host2", ""); // waits for inventories; refused, harmless
    TestProbe<DrainReply> probe = kit.createTestProbe(DrainReply.class);
    sched.tell(
        new SchedulerProtocol.StartDrain(
            new SchedulerProtocol.DrainRequest("host1", 0, true, MigrationOptions.defaults()),
            probe.ref()));
    String id = probe.receiveMessage().drain().id();
    Map<String, AgentProtocol.StartMigration> live = new java.util.HashMap<>();
    for (int i = 0; i < 2; i++) {
      AgentProtocol.StartMigration m = host1.starts.receiveMessage();
      live.put(m.vm(), m);
    }
    // "a": every live attempt rolls back; "b": its last one fails with the VM's place in doubt
    AgentProtocol.StartMigration a = live.get("a");
    AgentProtocol.StartMigration b = live.get("b");
    for (int attempt = 1; attempt < settings.drainAttempts(); attempt++) {
      host1.finish(a, MigrationOutcome.ROLLED_BACK);
      host1.finish(b, MigrationOutcome.ROLLED_BACK);
      Map<String, AgentProtocol.StartMigration> next = new java.util.HashMap<>();
      for (int i = 0; i < 2; i++) {
        AgentProtocol.StartMigration m = host1.starts.receiveMessage();
        assertEquals(
            MigrationOptions.defaults().strategy(), m.options().strategy(), "still live: " + m);
        next.put(m.vm(), m);
      }
      a = next.get("a");
      b = next.get("b");
    }
    host1.finish(a, MigrationOutcome.ROLLED_BACK);
    host1.finish(b, MigrationOutcome.FAILED);
    AgentProtocol.StartMigration cold = host1.starts.receiveMessage();
    assertEquals("a", cold.vm());
    assertEquals(MigrationStrategy.COLD, cold.options().strategy());
    host1.starts.expectNoMessage(Duration.ofMillis(300));
    sched.tell(new SchedulerProtocol.GetDrain(id, probe.ref()));
    DrainVm lineA =
        probe.receiveMessage().drain().vms().stream()
            .filter(v -> v.vm().equals("a"))
            .findFirst()
            .orElseThrow();
    assertTrue(Set.of("queued", "running").contains(lineA.status()), lineA.toString());
    assertTrue(
        lineA.message().contains("moving it cold") || lineA.message().contains("moving cold to"),
        lineA.toString());
    assertEquals(settings.drainAttempts() + 1, lineA.attempts());

    // the cold move fails as well: no further attempt, the drain ends partial
    host1.finish(cold, MigrationOutcome.ROLLED_BACK);
    host1.starts.expectNoMessage(Duration.ofMillis(300));
    SchedulerProtocol.DrainView done =
        eventually(
            () -> {
              SchedulerProtocol.DrainView d = drain(sched, id, probe);
              assertEquals("partial", d.state(), d.toString());
              return d;
            });
    assertTrue(done.vms().stream().allMatch(v -> v.status().equals("failed")), done.toString());
  }

  @Test
  void aCancelledDrainStopsQueuedMovesAndGivesTheHostBack() {
    host1.run("a", "b", "c");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings.withCaps(1, 2, 8), "s-dc");
    submit(sched, "warm-up", "host1", "host2", "");
    TestProbe<DrainReply> probe = kit.createTestProbe(DrainReply.class);
    sched.tell(
        new SchedulerProtocol.StartDrain(
            new SchedulerProtocol.DrainRequest("host1", 0, false, MigrationOptions.defaults()),
            probe.ref()));
    String id = probe.receiveMessage().drain().id();
    AgentProtocol.StartMigration running = host1.starts.receiveMessage();
    sched.tell(new SchedulerProtocol.CancelDrain(id, probe.ref()));
    SchedulerProtocol.DrainView cancelled = probe.receiveMessage().drain();
    assertEquals("cancelled", cancelled.state());
    assertEquals(2, cancelled.vms().stream().filter(v -> v.status().equals("cancelled")).count());
    host1.starts.expectNoMessage(Duration.ofMillis(500));
    host1.finish(running, MigrationOutcome.COMPLETED);
    awaitState(sched, running.migrationId(), JobState.COMPLETED);
    sched.tell(new SchedulerProtocol.GetDrain(id, probe.ref()));
    assertEquals(
        "moved",
        probe.receiveMessage().drain().vms().stream()
            .filter(v -> v.vm().equals(running.vm()))
            .findFirst()
            .orElseThrow()
            .status(),
        "the running move still lands in the report");
  }

  @Test
  void aDrainDeadlineGivesUpQueuedMovesAndLetsRunningOnesFinish() {
    host1.run("a", "b", "c");
    ActorRef<SchedulerProtocol.Command> sched = scheduler(settings.withCaps(1, 2, 8), "s-dl");
    submit(sched, "warm-up", "host1", "host2", "");
    TestProbe<DrainReply> probe = kit.createTestProbe(DrainReply.class);
    long deadline = now.get() + 1500;
    sched.tell(
        new SchedulerProtocol.StartDrain(
            new SchedulerProtocol.DrainRequest(
                "host1", deadline, false, MigrationOptions.defaults()),
            probe.ref()));
    String id = probe.receiveMessage().drain().id();
    AgentProtocol.StartMigration running = host1.starts.receiveMessage();
    assertEquals(
        deadline,
        running.options().deadlineEpochMillis(),
        "the agent gets the deadline too: it rolls back if the switchover has not started");
    // the deadline passes on the scheduler's clock; its next tick gives up the queued moves
    now.addAndGet(2000);
    SchedulerProtocol.DrainView d =
        eventually(
            () -> {
              SchedulerProtocol.DrainView v = drain(sched, id, probe);
              assertEquals("partial", v.state(), v.toString());
              return v;
            });
    assertEquals(2, d.vms().stream().filter(v -> v.status().equals("given-up")).count());
    host1.starts.expectNoMessage(Duration.ofMillis(300));
    host1.finish(running, MigrationOutcome.COMPLETED);
    awaitState(sched, running.migrationId(), JobState.COMPLETED);
    sched.tell(new SchedulerProtocol.GetDrain(id, probe.ref()));
    assertEquals(
        "moved",
        probe.receiveMessage().drain().vms().stream()
            .filter(v -> v.vm().equals(running.vm()))
            .findFirst()
            .orElseThrow()
            .status());
  }

  @Test
  void aRestartedSchedulerRecoversItsQueueAndAsksAgentsAgain() {
    host1.run("a", "b", "c");
    SchedulerSettings one = settings.withCaps(1, 2, 8);
    ActorRef<SchedulerProtocol.Command> sched = scheduler(one, "s-before");
    String a = submit(sched, "a", "host1", "host2", "").job().id();
    String b = submit(sched, "b", "host1", "host2", "").job().id();
    AgentProtocol.StartMigration first = host1.starts.receiveMessage();
    assertEquals(a, first.migrationId());
    kit.stop(sched);
    schedulers.remove(sched);

    ActorRef<SchedulerProtocol.Command> again = scheduler(one, "s-after");
    // the running job's runner asks again: the agent treats the same id as a subscription
    AgentProtocol.StartMigration resent = host1.starts.receiveMessage(Duration.ofSeconds(5));
    assertEquals(a, resent.migrationId());
    assertEquals(JobState.QUEUED, job(again, b).state());
    host1.finish(resent, MigrationOutcome.COMPLETED);
    assertEquals(b, host1.starts.receiveMessage().migrationId());
    awaitState(again, a, JobState.COMPLETED);
    assertTrue(snapshots() > 0, "recovery went through a snapshot (snapshot-every = 2)");
  }

  private int snapshots() {
    try (var c =
            java.sql.DriverManager.getConnection(
                config.getString("ferry.scheduler.journal.url"), "ferry", "");
        var q =
            c.prepareStatement("SELECT COUNT(*) FROM \"snapshot\" WHERE \"persistence_id\" = ?")) {
      q.setString(1, persistenceId.id());
      var rs = q.executeQuery();
      rs.next();
      return rs.getInt(1);
    } catch (java.sql.SQLException e) {
      throw new IllegalStateException(e);
    }
  }
}
