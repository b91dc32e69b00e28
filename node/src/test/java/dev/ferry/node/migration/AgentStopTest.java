package dev.ferry.node.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.agent.AgentGuardian;
import dev.ferry.node.agent.AgentStatus;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import org.apache.pekko.Done;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;

/**
 * SIGTERM: the agent takes no new migration and answers the shutdown only once the running ones
 * ended; readiness is false meanwhile (issue 11: the stop did not wait, although the unit file and
 * the DaemonSet said it did).
 */
class AgentStopTest extends EngineFixture {

  @Test
  void aStoppingAgentRefusesNewMigrationsAndWaitsForTheRunningOne() {
    assertEquals(AgentStatus.State.READY, AgentStatus.get(testKit.system()).state());
    srcHv.migrationGate = new CountDownLatch(1);
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(src)
        .tell(new AgentProtocol.StartMigration("m-stop", VM, dst, overlay(), events.getRef()));
    awaitPhase(events, MigrationPhase.MEMORY_MIGRATION, "");

    TestProbe<Done> stopped = testKit.createTestProbe();
    agents.get(0).tell(new AgentGuardian.FinishMigrations(stopped.getRef()));
    stopped.expectNoMessage(Duration.ofMillis(300));
    assertTrue(!AgentStatus.get(testKit.system()).ready(), "not ready while stopping");
    TestProbe<MigrationEvent> late = testKit.createTestProbe();
    agent(src)
        .tell(new AgentProtocol.StartMigration("m-late", "vm2", dst, overlay(), late.getRef()));
    MigrationEvent refused = late.receiveMessage();
    assertTrue(
        refused instanceof MigrationEvent.Rejected r && r.reason().contains("is stopping"),
        refused.toString());

    srcHv.migrationGate.countDown();
    assertEquals(MigrationOutcome.COMPLETED, await(events).result().outcome());
    stopped.expectMessage(Duration.ofSeconds(10), Done.getInstance());
  }
}
