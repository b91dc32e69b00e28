package dev.ferry.api;

import dev.ferry.protocol.SchedulerProtocol;
import java.time.Duration;
import java.util.Set;
import java.util.TreeSet;
import org.apache.pekko.actor.Cancellable;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * The host names the scheduler knows, refreshed every few seconds, so that a request naming an
 * unknown host is refused by the API without reaching the scheduler.
 */
public final class HostDirectory implements AutoCloseable {
  private final Duration refresh;
  private volatile Set<String> known = Set.of();
  private volatile long refreshedAtMillis;
  private final Cancellable timer;

  public HostDirectory(
      ActorSystem<?> system, ActorRef<SchedulerProtocol.Command> scheduler, Duration refresh) {
    this.refresh = refresh;
    this.timer =
        system
            .scheduler()
            .scheduleAtFixedRate(
                Duration.ZERO,
                refresh,
                () ->
                    AskPattern.<SchedulerProtocol.Command, SchedulerProtocol.HostsReply>ask(
                            scheduler,
                            SchedulerProtocol.GetHosts::new,
                            Duration.ofSeconds(5),
                            system.scheduler())
                        .thenAccept(this::update),
                system.executionContext());
  }

  private void update(SchedulerProtocol.HostsReply reply) {
    Set<String> names = new TreeSet<>();
    reply.hosts().forEach(h -> names.add(h.host()));
    known = Set.copyOf(names);
    refreshedAtMillis = System.currentTimeMillis();
  }

  /** Every host name the scheduler has had an inventory from, reachable or not. */
  public Set<String> known() {
    Set<String> k = known;
    if (k.isEmpty()) {
      throw new ApiException(
          Problem.of(
              503,
              "unavailable",
              "Unavailable",
              "no host inventory yet: the scheduler is starting or unreachable; retry"));
    }
    return new TreeSet<>(k);
  }

  /** Whether the scheduler answered within the last three refresh intervals. */
  public boolean fresh() {
    return System.currentTimeMillis() - refreshedAtMillis <= 3 * refresh.toMillis();
  }

  @Override
  public void close() {
    timer.cancel();
  }
}
