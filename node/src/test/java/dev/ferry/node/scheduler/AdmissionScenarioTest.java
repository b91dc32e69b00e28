package dev.ferry.node.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.typesafe.config.ConfigFactory;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Seeded random scenarios of thousands of submissions, completions, failures and cancels, driven
 * the way the scheduler drives admission (every change is followed by one admission round whose
 * starts are applied at once). After every round: every cap holds; the round left nothing startable
 * behind (freed capacity is refilled at once, no batch barrier); a job that could start was only
 * passed over because something ahead of it in queue order (priority, then FIFO) started; at the
 * end nothing is left holding a slot. The checks recount everything from the jobs themselves rather
 * than trusting Admission's own bookkeeping.
 */
class AdmissionScenarioTest {
  private static final long GIB = 1L << 30;
  private static final List<String> HOSTS = List.of("h0", "h1", "h2", "h3", "h4", "h5");
  private static final SchedulerSettings SETTINGS =
      SchedulerSettings.from(ConfigFactory.load())
          .withCaps(2, 2, 7)
          .withLinks(
              new SchedulerSettings.LinkSpec(1_000_000_000L, 3),
              Map.of("h5", new SchedulerSettings.LinkSpec(200_000_000L, 1)),
              List.of(
                  new SchedulerSettings.Segment(
                      "rack-a",
                      new SchedulerSettings.LinkSpec(500_000_000L, 2),
                      List.of("h0", "h1", "h2"))));

  private final SchedulerState state = new SchedulerState(50);
  private long seq = 1;
  private long now = 1;
  private int rounds;
  private int startsTotal;
  private int passedOver;

  @ParameterizedTest(name = "seed {0}")
  @ValueSource(longs = {1, 42, 20261126})
  void capsHoldCapacityIsRefilledAtOnceAndPrioritiesHold(long seed) {
    Random r = new Random(seed);
    int submitted = 0;
    int completed = 0;
    int failed = 0;
    int cancelled = 0;
    for (int step = 0; step < 4000; step++) {
      int what = r.nextInt(100);
      List<Job> running = state.running();
      List<Job> queued = new ArrayList<>(state.queue());
      if (what < 45 || running.isEmpty() && queued.isEmpty()) {
        submit(r);
        submitted++;
      } else if (what < 75 && !running.isEmpty()) {
        end(running.get(r.nextInt(running.size())), JobState.COMPLETED);
        completed++;
      } else if (what < 87 && !running.isEmpty()) {
        JobState s =
            List.of(JobState.FAILED, JobState.ROLLED_BACK, JobState.MIGRATED_BACK)
                .get(r.nextInt(3));
        end(running.get(r.nextInt(running.size())), s);
        failed++;
      } else {
        List<Job> any = new ArrayList<>(running);
        any.addAll(queued);
        end(any.get(r.nextInt(any.size())), JobState.CANCELLED);
        cancelled++;
      }
      admit();
    }
    // drain everything: what runs ends, what waits starts as slots free, then ends
    while (!state.active().isEmpty()) {
      for (Job j : state.running()) {
        end(j, JobState.COMPLETED);
      }
      admit();
      if (state.running().isEmpty() && !state.queue().isEmpty()) {
        // only placement jobs without a fitting host can be stuck: cancel them
        for (Job j : new ArrayList<>(state.queue())) {
          assertTrue(j.destination().isEmpty(), "a job with a destination never started: " + j);
          end(j, JobState.CANCELLED);
        }
      }
    }
    assertTrue(state.queue().isEmpty() && state.running().isEmpty() && state.active().isEmpty());
    assertEquals(
        List.of(),
        Admission.decide(state, loads(), h -> true, h -> "active", SETTINGS).starts(),
        "nothing left to start");
    assertTrue(Admission.streamsInUse(state.running(), SETTINGS).isEmpty(), "no stream leaked");
    // the scenario exercised what it claims to
    assertTrue(submitted > 1500 && completed > 500 && failed > 100 && cancelled > 100);
    assertTrue(startsTotal > 1000 && passedOver > 50, startsTotal + " starts, " + passedOver);
    assertTrue(rounds >= 4000);
  }

  private void submit(Random r) {
    String src = HOSTS.get(r.nextInt(HOSTS.size()));
    String dst = "";
    if (r.nextInt(4) != 0) { // most with an explicit destination, some placed
      do {
        dst = HOSTS.get(r.nextInt(HOSTS.size()));
      } while (dst.equals(src));
    }
    Priority p = Priority.values()[r.nextInt(Priority.values().length)];
    long bandwidth = r.nextInt(3) == 0 ? 100_000_000L : 0;
    long s = seq++;
    Job j =
        new Job(
            "j" + s,
            new MigrationRequest(
                "vm" + s, src, dst, MigrationOptions.defaults().withBandwidth(bandwidth), p, "t"),
            "",
            s,
            p == Priority.DRAIN ? (s / 10) * 10 : s, // drains queue in groups
            (1 + r.nextInt(8)) * GIB,
            GIB,
            1,
            JobState.QUEUED,
            0,
            now,
            0,
            0,
            null,
            "");
    state.apply(new SchedulerEvent.JobSubmitted(j));
  }

  private void end(Job j, JobState s) {
    state.apply(new SchedulerEvent.JobEnded(j.id(), s, null, s.name(), now++));
  }

  private static HostLoads loads() {
    Map<String, HostLoads.Known> m = new TreeMap<>();
    for (String h : HOSTS) {
      m.put(
          h,
          new HostLoads.Known(
              new HostInventory(
                  h, 64, 512 * GIB, 512 * GIB, 10_000 * GIB, 9_000 * GIB, List.of(), 0),
              0));
    }
    return HostLoads.of(m, List.of(), List.of());
  }

  /** One admission round as the scheduler runs it, with the checks around it. */
  private void admit() {
    rounds++;
    List<Job> before = new ArrayList<>(state.queue());
    Set<String> startableBefore =
        before.stream()
            .filter(j -> startable(j, state.running()))
            .map(Job::id)
            .collect(Collectors.toSet());
    Admission.Decision d = Admission.decide(state, loads(), h -> true, h -> "active", SETTINGS);
    Set<String> started = new java.util.HashSet<>();
    for (Admission.Start st : d.starts()) {
      state.apply(new SchedulerEvent.JobStarted(st.jobId(), st.destination(), st.bandwidth(), now));
      started.add(st.jobId());
    }
    startsTotal += started.size();
    checkCaps();
    // refilled at once: whatever could start did, so a second round in the same state finds nothing
    for (Job q : state.queue()) {
      if (startable(q, state.running())) {
        fail("round " + rounds + ": " + q + " could start but waits: " + d.waiting().get(q.id()));
      }
    }
    // priority and FIFO: a job that could start at the round's beginning is passed over only if
    // something ahead of it started in this round (and took what it needed)
    for (Job q : before) {
      if (startableBefore.contains(q.id()) && !started.contains(q.id())) {
        passedOver++;
        boolean aheadStarted =
            before.stream()
                .anyMatch(s -> started.contains(s.id()) && Job.QUEUE_ORDER.compare(s, q) < 0);
        assertTrue(aheadStarted, "round " + rounds + ": " + q + " was passed over");
      }
    }
  }

  /**
   * An independent statement of the caps: could {@code j} (with an explicit destination) start now,
   * given what runs? Placement jobs are judged by the caps of their best case (any other host).
   */
  private static boolean startable(Job j, List<Job> running) {
    if (running.size() >= SETTINGS.clusterCap()) {
      return false;
    }
    if (running.stream().filter(x -> x.source().equals(j.source())).count()
        >= SETTINGS.outboundPerHost()) {
      return false;
    }
    List<String> dsts =
        j.destination().isEmpty()
            ? HOSTS.stream().filter(h -> !h.equals(j.source())).toList()
            : List.of(j.destination());
    for (String dst : dsts) {
      if (running.stream().filter(x -> x.destination().equals(dst)).count()
              < SETTINGS.inboundPerHost()
          && linksFree(j.source(), dst, running)) {
        return true;
      }
    }
    return false;
  }

  private static boolean linksFree(String src, String dst, List<Job> running) {
    Map<String, Integer> streams = streams(running);
    for (Admission.Link l : Admission.path(src, dst, SETTINGS)) {
      if (streams.getOrDefault(l.name(), 0) >= l.spec().streams()) {
        return false;
      }
    }
    return true;
  }

  /** Streams per link, recounted from the running jobs' hosts. */
  private static Map<String, Integer> streams(List<Job> running) {
    Map<String, Integer> used = new HashMap<>();
    for (Job x : running) {
      used.merge("nic-out:" + x.source(), 1, Integer::sum);
      used.merge("nic-in:" + x.destination(), 1, Integer::sum);
      boolean srcIn = List.of("h0", "h1", "h2").contains(x.source());
      boolean dstIn = List.of("h0", "h1", "h2").contains(x.destination());
      if (srcIn != dstIn) {
        used.merge("segment:rack-a", 1, Integer::sum);
      }
    }
    return used;
  }

  private void checkCaps() {
    List<Job> running = state.running();
    assertTrue(running.size() <= SETTINGS.clusterCap(), "cluster cap: " + running.size());
    Map<String, Long> out =
        running.stream().collect(Collectors.groupingBy(Job::source, Collectors.counting()));
    Map<String, Long> in =
        running.stream().collect(Collectors.groupingBy(Job::destination, Collectors.counting()));
    out.forEach(
        (h, n) -> assertTrue(n <= SETTINGS.outboundPerHost(), "outbound of " + h + ": " + n));
    in.forEach((h, n) -> assertTrue(n <= SETTINGS.inboundPerHost(), "inbound of " + h + ": " + n));
    streams(running)
        .forEach(
            (link, n) -> {
              int limit =
                  link.equals("segment:rack-a")
                      ? 2
                      : link.endsWith(":h5") ? 1 : SETTINGS.nicOf("any").streams();
              assertTrue(n <= limit, "streams on " + link + ": " + n + " > " + limit);
            });
    for (Job j : running) {
      assertTrue(!j.destination().isEmpty() && !j.destination().equals(j.source()), j.toString());
      long share =
          Admission.path(j.source(), j.destination(), SETTINGS).stream()
              .mapToLong(l -> l.spec().share())
              .min()
              .orElseThrow();
      long asked = j.request().options().bandwidthBytesPerSecond();
      assertEquals(asked > 0 ? Math.min(asked, share) : share, j.bandwidth(), j.toString());
    }
  }
}
