package dev.ferry.node.migration;

import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.BehaviorInterceptor;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.Signal;
import org.apache.pekko.actor.typed.TypedActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Wrappers every migration actor uses: its logging MDC, and releasing a resource (a libvirt event
 * subscription) when it stops, in whatever state.
 */
public final class MigrationBehaviors {
  private MigrationBehaviors() {}

  /**
   * Puts the migration id and VM into the logging MDC of every line the actor logs, so that a JSON
   * log line can be traced to its migration without parsing the message.
   */
  public static <T> Behavior<T> withMigrationMdc(
      Class<T> type, String migrationId, String vm, Behavior<T> behavior) {
    return Behaviors.withMdc(type, Map.of("migrationId", migrationId, "vm", vm), behavior);
  }

  public static <T> Behavior<T> closeOnStop(
      Behavior<T> behavior, AtomicReference<AutoCloseable> resource) {
    return Behaviors.intercept(() -> new CloseOnStop<T>(resource), behavior);
  }

  private static final class CloseOnStop<T> extends BehaviorInterceptor<T, T> {
    private final AtomicReference<AutoCloseable> resource;

    @SuppressWarnings("unchecked")
    CloseOnStop(AtomicReference<AutoCloseable> resource) {
      super((Class<T>) (Class<?>) Object.class);
      this.resource = resource;
    }

    @Override
    public Behavior<T> aroundReceive(TypedActorContext<T> ctx, T msg, ReceiveTarget<T> target) {
      return target.apply(ctx, msg);
    }

    @Override
    public Behavior<T> aroundSignal(
        TypedActorContext<T> ctx, Signal signal, SignalTarget<T> target) {
      if (signal instanceof PostStop) {
        AutoCloseable r = resource.getAndSet(null);
        if (r != null) {
          try {
            r.close();
          } catch (Exception e) {
            // stopping anyway
          }
        }
      }
      return target.apply(ctx, signal);
    }
  }
}
