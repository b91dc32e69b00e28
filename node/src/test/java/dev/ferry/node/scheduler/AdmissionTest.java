package dev.ferry.node.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** Admission as a pure function: caps, links, bandwidth shares and queue order. */
class AdmissionTest {
  private static final SchedulerSettings BASE =
      SchedulerSettings.from(ConfigFactory.load()).withCaps(2, 2, 8);
  private static final long GIB = 1L << 30;

  private final SchedulerState state = new SchedulerState(100);
  private long seq = 1;

  private Job submit(String vm, String src, String dst, Priority p, long bandwidth) {
    Job j =
        new Job(
            "j" + seq,
            new MigrationRequest(
                vm, src, dst, MigrationOptions.defaults().withBandwidth(bandwidth), p, "t"),
            "",
            seq,
            seq,
            GIB,
            GIB,
            1,
            JobState.QUEUED,
            0,
            0,
            0,
            0,
            null,
            "");
    seq++;
    state.apply(new SchedulerEvent.JobSubmitted(j));
    return j;
  }

  private static HostLoads loads(String... hosts) {
    Map<String, HostLoads.Known> m = new TreeMap<>();
    for (String h : hosts) {
      m.put(
          h,
          new HostLoads.Known(
              new HostInventory(h, 8, 16 * GIB, 16 * GIB, 1000 * GIB, 900 * GIB, List.of(), 0), 0));
    }
    return HostLoads.of(m, List.of(), List.of());
  }

  private Admission.Decision decide(SchedulerSettings s, String... hosts) {
    return Admission.decide(state, loads(hosts), h -> true, h -> "active", s);
  }

  private void startAll(Admission.Decision d) {
    d.starts()
        .forEach(
            st ->
                state.apply(
                    new SchedulerEvent.JobStarted(
                        st.jobId(), st.destination(), st.bandwidth(), 1)));
  }

  @Test
  void aFullSourceDoesNotHoldBackOtherHosts() {
    submit("a", "h1", "h2", Priority.REQUEST, 0);
    submit("b", "h1", "h3", Priority.REQUEST, 0);
    Job c = submit("c", "h1", "h2", Priority.REQUEST, 0);
    Job d = submit("d", "h4", "h3", Priority.REQUEST, 0);
    Admission.Decision dec = decide(BASE, "h1", "h2", "h3", "h4");
    assertEquals(
        List.of("j1", "j2", "j4"), dec.starts().stream().map(Admission.Start::jobId).toList());
    assertTrue(dec.waiting().get(c.id()).contains("outbound cap of h1"));
    assertTrue(!dec.waiting().containsKey(d.id()));
  }

  @Test
  void theClusterCapAndRunningJobsCountUntilTheyEnd() {
    SchedulerSettings s = BASE.withCaps(8, 8, 2);
    submit("a", "h1", "h2", Priority.REQUEST, 0);
    submit("b", "h3", "h4", Priority.REQUEST, 0);
    Job c = submit("c", "h5", "h6", Priority.REQUEST, 0);
    startAll(decide(s, "h1", "h2", "h3", "h4", "h5", "h6"));
    Admission.Decision again = decide(s, "h1", "h2", "h3", "h4", "h5", "h6");
    assertEquals(List.of(), again.starts());
    assertTrue(again.waiting().get(c.id()).contains("cluster cap"));
    state.apply(new SchedulerEvent.JobEnded("j1", JobState.FAILED, null, "x", 2));
    assertEquals(
        List.of(c.id()),
        decide(s, "h1", "h2", "h3", "h4", "h5", "h6").starts().stream()
            .map(Admission.Start::jobId)
            .toList());
  }

  @Test
  void aSegmentLimitsStreamsAndGivesAFairShare() {
    SchedulerSettings s =
        BASE.withCaps(8, 8, 8)
            .withLinks(
                new SchedulerSettings.LinkSpec(1_000_000_000L, 4),
                Map.of("h9", new SchedulerSettings.LinkSpec(100_000_000L, 1)),
                List.of(
                    new SchedulerSettings.Segment(
                        "uplink",
                        new SchedulerSettings.LinkSpec(300_000_000L, 2),
                        List.of("h1", "h2"))));
    submit("a", "h1", "h3", Priority.REQUEST, 0); // crosses the uplink
    submit("b", "h2", "h4", Priority.REQUEST, 50_000_000L); // crosses it, asks for less
    Job c = submit("c", "h1", "h4", Priority.REQUEST, 0); // crosses it: no stream left
    submit("d", "h1", "h2", Priority.REQUEST, 0); // inside the segment: does not cross
    Admission.Decision dec = decide(s, "h1", "h2", "h3", "h4");
    Map<String, Long> bw = new TreeMap<>();
    dec.starts().forEach(st -> bw.put(st.jobId(), st.bandwidth()));
    assertEquals(Map.of("j1", 150_000_000L, "j2", 50_000_000L, "j4", 250_000_000L), bw);
    assertTrue(dec.waiting().get(c.id()).contains("segment:uplink"));
  }

  @Test
  void placementSkipsHostsWithoutRoomAndNotActiveOnes() {
    Job a = submit("a", "h1", "", Priority.DRAIN, 0);
    Map<String, HostLoads.Known> m = new TreeMap<>();
    m.put(
        "h1",
        new HostLoads.Known(
            new HostInventory("h1", 8, 16 * GIB, 0, 1000 * GIB, 900 * GIB, List.of(), 0), 0));
    m.put(
        "h2",
        new HostLoads.Known(
            new HostInventory("h2", 8, GIB, 0, 1000 * GIB, 900 * GIB, List.of(), 0), 0));
    m.put(
        "h3",
        new HostLoads.Known(
            new HostInventory("h3", 8, 64 * GIB, 0, 1000 * GIB, 900 * GIB, List.of(), 0), 0));
    m.put(
        "h4",
        new HostLoads.Known(
            new HostInventory("h4", 8, 16 * GIB, 0, 1000 * GIB, 900 * GIB, List.of(), 0), 0));
    HostLoads loads = HostLoads.of(m, List.of(), List.of());
    Admission.Decision dec =
        Admission.decide(
            state, loads, h -> true, h -> h.equals("h3") ? "draining" : "active", BASE);
    assertEquals(List.of(new Admission.Start(a.id(), "h4", 625_000_000L)), dec.starts());
    SchedulerState other = new SchedulerState(1);
    other.apply(new SchedulerEvent.JobSubmitted(a));
    Admission.Decision none =
        Admission.decide(
            other,
            HostLoads.of(m, List.of(), List.of()),
            h -> true,
            h -> h.equals("h2") ? "active" : "drained",
            BASE);
    assertTrue(none.waiting().get(a.id()).contains("h2 lacks memory"), none.waiting().toString());
  }
}
