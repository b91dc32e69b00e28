package dev.ferry.node.scheduler;

import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.Verification;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * A node agent for scheduler tests: answers inventory from what the test sets, registers with the
 * Receptionist like the real one, and hands every {@code StartMigration} and {@code
 * CancelMigration} to a probe so the test decides when and how each migration ends.
 */
public final class FakeAgent {
  public final String host;
  final AtomicReference<List<HostInventory.VmInfo>> vms = new AtomicReference<>(List.of());
  public final TestProbe<AgentProtocol.StartMigration> starts;
  public final TestProbe<AgentProtocol.CancelMigration> cancels;
  final List<String> startIds = new CopyOnWriteArrayList<>();
  final ActorRef<AgentProtocol.Command> ref;
  volatile long memoryBytes = 16L << 30;
  volatile int cpus = 8;
  volatile long datastoreFree = 500L << 30;

  public FakeAgent(ActorTestKit kit, String host) {
    this.host = host;
    this.starts = kit.createTestProbe(AgentProtocol.StartMigration.class);
    this.cancels = kit.createTestProbe(AgentProtocol.CancelMigration.class);
    this.ref = kit.spawn(behavior(), "fake-agent-" + host);
    kit.system().receptionist().tell(Receptionist.register(AgentProtocol.AGENTS, ref));
    kit.system().receptionist().tell(Receptionist.register(AgentProtocol.agentKey(host), ref));
  }

  private Behavior<AgentProtocol.Command> behavior() {
    return Behaviors.receive(AgentProtocol.Command.class)
        .onMessage(
            AgentProtocol.GetInventory.class,
            m -> {
              m.replyTo()
                  .tell(
                      new HostInventory(
                          host,
                          cpus,
                          memoryBytes,
                          memoryBytes,
                          1000L << 30,
                          datastoreFree,
                          vms.get(),
                          System.currentTimeMillis()));
              return Behaviors.same();
            })
        .onMessage(
            AgentProtocol.StartMigration.class,
            m -> {
              startIds.add(m.migrationId());
              starts.ref().tell(m);
              return Behaviors.same();
            })
        .onMessage(
            AgentProtocol.CancelMigration.class,
            m -> {
              cancels.ref().tell(m);
              return Behaviors.same();
            })
        .build();
  }

  public void run(String... names) {
    List<HostInventory.VmInfo> list = new ArrayList<>();
    for (String n : names) {
      list.add(new HostInventory.VmInfo(n, 1, 1L << 30, 2L << 30, true));
    }
    vms.set(List.copyOf(list));
  }

  void remove(String vm) {
    vms.set(vms.get().stream().filter(v -> !v.name().equals(vm)).toList());
  }

  void add(HostInventory.VmInfo vm) {
    List<HostInventory.VmInfo> l = new ArrayList<>(vms.get());
    l.add(vm);
    vms.set(List.copyOf(l));
  }

  static MigrationResult result(
      AgentProtocol.StartMigration m, String source, MigrationOutcome outcome) {
    return new MigrationResult(
        m.migrationId(),
        m.vm(),
        source,
        m.destination(),
        outcome,
        outcome == MigrationOutcome.COMPLETED ? m.destination() : source,
        outcome.name().toLowerCase(),
        MigrationStrategy.SUSPEND_SYNC,
        List.of(),
        Verification.none(),
        100,
        1000,
        1 << 20,
        0,
        0,
        List.of());
  }

  /** Ends the migration {@code m} with {@code outcome}, as the real agent reports it. */
  public void finish(AgentProtocol.StartMigration m, MigrationOutcome outcome) {
    m.replyTo().tell(new MigrationEvent.Finished(result(m, host, outcome)));
  }
}
