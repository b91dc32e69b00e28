package dev.ferry.node.scheduler;

import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.PlannedMove;
import dev.ferry.protocol.SchedulerProtocol.Policy;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import dev.ferry.protocol.SchedulerProtocol.RebalancePlan;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.function.BiFunction;
import java.util.function.Predicate;

/**
 * Rebalancing policies as pure functions over {@link HostLoads}: a plan is a list of moves, each
 * with what it costs (bytes) and what it gains, so an operator can judge a dry run.
 *
 * <ul>
 *   <li>{@code balance}: while the memory-use spread (fullest minus emptiest host) is above the
 *       threshold, move one VM from the fullest host to where it lowers the variance most; among
 *       moves within 1% of the best gain, the one that copies the fewest bytes.
 *   <li>{@code pack}: empty the least used hosts onto the others (fullest that fits first), as long
 *       as no target's use goes above the threshold; a host is emptied fully or not at all.
 * </ul>
 */
final class Rebalancer {
  private Rebalancer() {}

  /**
   * @param movable whether a VM may move (not in cooldown, no active job)
   * @param eligible hosts that may give and receive VMs (active, reachable)
   */
  static RebalancePlan plan(
      Policy policy,
      double threshold,
      int maxMoves,
      HostLoads current,
      Predicate<String> movable,
      Predicate<String> eligible,
      SchedulerSettings s) {
    HostLoads loads = current.copy();
    double before = spread(loads, eligible);
    List<PlannedMove> moves = new ArrayList<>();
    int freed = 0;
    if (policy == Policy.BALANCE) {
      balance(loads, threshold, maxMoves, movable, eligible, s, moves);
    } else {
      freed = pack(loads, threshold, maxMoves, movable, eligible, s, moves);
    }
    long bytes = moves.stream().mapToLong(PlannedMove::bytes).sum();
    String message =
        moves.isEmpty()
            ? (policy == Policy.BALANCE
                ? "nothing to do: the spread is within the threshold or no move lowers it"
                : "nothing to do: no host can be emptied below the threshold")
            : moves.size() + " moves, " + bytes + " bytes";
    return new RebalancePlan(
        policy, moves, bytes, before, spread(loads, eligible), freed, false, message);
  }

  static double spread(HostLoads loads, Predicate<String> eligible) {
    double max = 0;
    double min = 1;
    boolean any = false;
    for (HostLoads.Load l : loads.all()) {
      if (eligible.test(l.host)) {
        any = true;
        max = Math.max(max, l.memoryUse());
        min = Math.min(min, l.memoryUse());
      }
    }
    return any ? max - min : 0;
  }

  /** Memory use as {@link HostLoads.Load#memoryUse} computes it. */
  private static double use(long committed, long memoryBytes) {
    return memoryBytes == 0 ? 1.0 : (double) committed / memoryBytes;
  }

  private record Candidate(HostLoads.Vm vm, String source, String destination, double gain) {}

  private static void balance(
      HostLoads loads,
      double threshold,
      int maxMoves,
      Predicate<String> movable,
      Predicate<String> eligible,
      SchedulerSettings s,
      List<PlannedMove> moves) {
    List<String> moved = new ArrayList<>();
    while (moves.size() < maxMoves && spread(loads, eligible) > threshold) {
      HostLoads.Load fullest =
          loads.all().stream()
              .filter(l -> eligible.test(l.host))
              .max(Comparator.comparingDouble(HostLoads.Load::memoryUse))
              .orElse(null);
      if (fullest == null) {
        return;
      }
      // a move changes two hosts' memory use: with the sums of the uses and of their squares, each
      // candidate's variance is computed in O(1) rather than on a copy of every host's load
      int n = 0;
      double sum = 0;
      double squares = 0;
      for (HostLoads.Load l : loads.all()) {
        if (eligible.test(l.host)) {
          double u = l.memoryUse();
          n++;
          sum += u;
          squares += u * u;
        }
      }
      double v0 = squares / n - (sum / n) * (sum / n);
      List<Candidate> candidates = new ArrayList<>();
      for (HostLoads.Vm vm : List.copyOf(fullest.vms().values())) {
        if (!movable.test(vm.name()) || moved.contains(vm.name())) {
          continue;
        }
        for (HostLoads.Load target : loads.all()) {
          if (target == fullest
              || !eligible.test(target.host)
              || loads.whyNotFits(target.host, vm, s).isPresent()) {
            continue;
          }
          double fromBefore = fullest.memoryUse();
          double fromAfter = use(fullest.committedMemory() - vm.memoryBytes(), fullest.memoryBytes);
          double toBefore = target.memoryUse();
          double toAfter = use(target.committedMemory() + vm.memoryBytes(), target.memoryBytes);
          double sumAfter = sum - fromBefore + fromAfter - toBefore + toAfter;
          double squaresAfter =
              squares
                  - fromBefore * fromBefore
                  + fromAfter * fromAfter
                  - toBefore * toBefore
                  + toAfter * toAfter;
          double gain = v0 - (squaresAfter / n - (sumAfter / n) * (sumAfter / n));
          if (gain > 1e-12) {
            candidates.add(new Candidate(vm, fullest.host, target.host, gain));
          }
        }
      }
      if (candidates.isEmpty()) {
        return;
      }
      double best = candidates.stream().mapToDouble(Candidate::gain).max().orElse(0);
      Candidate pick =
          candidates.stream()
              .filter(c -> c.gain() >= best * 0.99)
              .min(
                  Comparator.comparingLong((Candidate c) -> c.vm().bytes())
                      .thenComparing(c -> -c.gain())
                      .thenComparing(c -> c.vm().name()))
              .orElseThrow();
      loads.move(pick.vm(), pick.source(), pick.destination());
      moved.add(pick.vm().name());
      moves.add(
          new PlannedMove(
              pick.vm().name(),
              pick.source(),
              pick.destination(),
              pick.vm().bytes(),
              pick.gain(),
              null));
    }
  }

  private static int pack(
      HostLoads loads,
      double threshold,
      int maxMoves,
      Predicate<String> movable,
      Predicate<String> eligible,
      SchedulerSettings s,
      List<PlannedMove> moves) {
    List<String> emptied = new ArrayList<>();
    List<String> receivers = new ArrayList<>();
    List<HostLoads.Load> order =
        loads.all().stream()
            .filter(l -> eligible.test(l.host) && !l.vms().isEmpty())
            .sorted(
                Comparator.comparingDouble(HostLoads.Load::memoryUse).thenComparing(l -> l.host))
            .toList();
    for (HostLoads.Load donor : order) {
      List<HostLoads.Vm> vms =
          donor.vms().values().stream()
              .sorted(Comparator.comparingLong(HostLoads.Vm::memoryBytes).reversed())
              .toList();
      if (receivers.contains(donor.host)
          || vms.stream().anyMatch(v -> !movable.test(v.name()))
          || moves.size() + vms.size() > maxMoves) {
        continue;
      }
      HostLoads trial = loads.copy();
      List<PlannedMove> planned = new ArrayList<>();
      for (HostLoads.Vm vm : vms) {
        String target =
            trial.all().stream()
                .filter(
                    l ->
                        !l.host.equals(donor.host)
                            && !emptied.contains(l.host)
                            && eligible.test(l.host)
                            && trial.whyNotFits(l.host, vm, s).isEmpty()
                            && (double) (l.committedMemory() + vm.memoryBytes()) / l.memoryBytes
                                <= threshold)
                .max(
                    Comparator.comparingDouble(HostLoads.Load::memoryUse)
                        .thenComparing(l -> l.host, Comparator.reverseOrder()))
                .map(l -> l.host)
                .orElse(null);
        if (target == null) {
          planned = null;
          break;
        }
        trial.move(vm, donor.host, target);
        planned.add(
            new PlannedMove(vm.name(), donor.host, target, vm.bytes(), 1.0 / vms.size(), null));
      }
      if (planned != null) {
        for (int i = 0; i < vms.size(); i++) {
          loads.move(vms.get(i), donor.host, planned.get(i).destination());
          receivers.add(planned.get(i).destination());
        }
        moves.addAll(planned);
        emptied.add(donor.host);
      }
    }
    return emptied.size();
  }

  /** A plan's moves as queued jobs, and the plan as applied (each move with its job id). */
  record Queued(List<SchedulerEvent> events, RebalancePlan applied) {}

  /**
   * Queues {@code plan}'s moves at rebalance priority, one job each, behind each other; a move
   * whose VM is no longer on its source is left out.
   */
  static Queued queue(
      RebalancePlan plan,
      String id,
      long seq,
      MigrationOptions options,
      BiFunction<String, String, Optional<HostInventory.VmInfo>> vmOn,
      long now) {
    List<SchedulerEvent> events = new ArrayList<>();
    List<PlannedMove> moves = new ArrayList<>();
    for (PlannedMove mv : plan.moves()) {
      Optional<HostInventory.VmInfo> vm = vmOn.apply(mv.source(), mv.vm());
      if (vm.isEmpty()) {
        continue;
      }
      Job job =
          Jobs.create(
              new MigrationRequest(
                  mv.vm(),
                  mv.source(),
                  mv.destination(),
                  options,
                  Priority.REBALANCE,
                  "rebalance:" + id),
              "",
              seq + moves.size(),
              seq,
              vm.get(),
              now);
      events.add(new SchedulerEvent.JobSubmitted(job));
      moves.add(
          new PlannedMove(
              mv.vm(), mv.source(), mv.destination(), mv.bytes(), mv.benefit(), job.id()));
    }
    return new Queued(
        events,
        new RebalancePlan(
            plan.policy(),
            moves,
            plan.totalBytes(),
            plan.spreadBefore(),
            plan.spreadAfter(),
            plan.hostsFreed(),
            true,
            plan.message()));
  }
}
