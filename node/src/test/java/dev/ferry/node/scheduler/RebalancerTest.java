package dev.ferry.node.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.SchedulerProtocol.PlannedMove;
import dev.ferry.protocol.SchedulerProtocol.Policy;
import dev.ferry.protocol.SchedulerProtocol.RebalancePlan;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The rebalancing policies on hand-made hosts. */
class RebalancerTest {
  private static final SchedulerSettings S = SchedulerSettings.from(ConfigFactory.load());
  private static final long GIB = 1L << 30;

  private final Map<String, HostLoads.Known> hosts = new TreeMap<>();

  private void host(String name, long memGib, HostInventory.VmInfo... vms) {
    hosts.put(
        name,
        new HostLoads.Known(
            new HostInventory(name, 16, memGib * GIB, 0, 1000 * GIB, 900 * GIB, List.of(vms), 0),
            0));
  }

  private static HostInventory.VmInfo vm(String name, long memGib, long diskGib) {
    return new HostInventory.VmInfo(name, 1, memGib * GIB, diskGib * GIB, true);
  }

  private RebalancePlan plan(
      Policy p, double threshold, java.util.function.Predicate<String> movable) {
    return Rebalancer.plan(
        p, threshold, 10, HostLoads.of(hosts, List.of(), List.of()), movable, h -> true, S);
  }

  @Test
  void balanceMovesFromTheFullestAndPrefersTheCheaperOfEqualGains() {
    // two 4 GiB VMs gain the same; the one with the smaller disk costs fewer bytes
    host("h1", 16, vm("big-disk", 4, 40), vm("small-disk", 4, 2), vm("x", 4, 2));
    host("h2", 16);
    RebalancePlan plan = plan(Policy.BALANCE, 0.3, vm -> true);
    assertEquals(1, plan.moves().size(), plan.toString());
    PlannedMove m = plan.moves().get(0);
    assertEquals("h2", m.destination());
    assertTrue(m.vm().equals("small-disk") || m.vm().equals("x"), m.toString());
    assertEquals(6 * GIB, m.bytes());
    assertTrue(plan.spreadAfter() < plan.spreadBefore());
    assertTrue(m.benefit() > 0);
  }

  @Test
  void balanceLeavesVmsInCooldownAlone() {
    host("h1", 16, vm("a", 8, 1), vm("b", 4, 1));
    host("h2", 16);
    RebalancePlan plan = plan(Policy.BALANCE, 0.1, vm -> !vm.equals("b"));
    assertTrue(plan.moves().stream().noneMatch(m -> m.vm().equals("b")), plan.toString());
  }

  @Test
  void packEmptiesTheLeastUsedHostsBelowTheCeiling() {
    host("h1", 16, vm("a", 8, 1));
    host("h2", 16, vm("b", 2, 1));
    host("h3", 16, vm("c", 1, 1));
    RebalancePlan plan = plan(Policy.PACK, 0.8, vm -> true);
    assertEquals(2, plan.hostsFreed(), plan.toString());
    assertTrue(plan.moves().stream().allMatch(m -> m.destination().equals("h1")), plan.toString());
  }

  @Test
  void packNeverGoesAboveTheCeiling() {
    host("h1", 16, vm("a", 8, 1));
    host("h2", 16, vm("b", 8, 1));
    RebalancePlan plan = plan(Policy.PACK, 0.75, vm -> true);
    assertEquals(List.of(), plan.moves());
  }
}
