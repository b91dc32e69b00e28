package dev.ferry.node.migration;

import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.BehaviorBuilder;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.japi.function.Function;
import org.apache.pekko.japi.function.Predicate;

/**
 * The handlers of one state of a migration actor: Pekko's {@link BehaviorBuilder}, plus handlers
 * for what another protocol's message carries. The actor receives the destination's replies, the
 * source's commands and the disk actors' events wrapped in one of its own records (registered with
 * {@link #carrying}); a state names the type it handles, {@code .on(Failed.class, f -> ...)}, and
 * never unwraps or casts. Immutable, like the builder it wraps: every call returns a new one.
 *
 * @param <T> the actor's message type
 */
public final class StateBuilder<T> {

  /** A wrapper record of the actor's protocol and how to take out what it carries. */
  private record Carrier<T, W extends T>(
      Class<W> wrapper, Class<?> carried, java.util.function.Function<W, Object> unwrap) {

    @SuppressWarnings("unchecked")
    <I> BehaviorBuilder<T> add(
        BehaviorBuilder<T> b, Class<I> type, Predicate<I> test, Function<I, Behavior<T>> handler) {
      return b.onMessage(
          wrapper,
          w -> type.isInstance(unwrap.apply(w)) && test.test(type.cast(unwrap.apply(w))),
          w -> handler.apply(type.cast(unwrap.apply(w))));
    }
  }

  private final Class<T> messages;
  private final List<Carrier<T, ?>> carriers;
  private final BehaviorBuilder<T> builder;

  private StateBuilder(Class<T> messages, List<Carrier<T, ?>> carriers, BehaviorBuilder<T> b) {
    this.messages = messages;
    this.carriers = carriers;
    this.builder = b;
  }

  /** A state with no handlers yet, for an actor of these messages. */
  public static <T> StateBuilder<T> receive(Class<T> messages) {
    return new StateBuilder<>(messages, List.of(), Behaviors.receive(messages));
  }

  /** Messages of type {@code wrapper} carry a {@code carried}, taken out by {@code unwrap}. */
  public <W extends T> StateBuilder<T> carrying(
      Class<W> wrapper, Class<?> carried, java.util.function.Function<W, Object> unwrap) {
    List<Carrier<T, ?>> c = new ArrayList<>(carriers);
    c.add(new Carrier<>(wrapper, carried, unwrap));
    return new StateBuilder<>(messages, List.copyOf(c), builder);
  }

  /** Handles a message of the actor's protocol, or one that a registered wrapper carries. */
  public <I> StateBuilder<T> on(Class<I> type, Function<I, Behavior<T>> handler) {
    return on(type, m -> true, handler);
  }

  /** The same, only for the messages that pass {@code test}. */
  @SuppressWarnings("unchecked")
  public <I> StateBuilder<T> on(
      Class<I> type, Predicate<I> test, Function<I, Behavior<T>> handler) {
    for (Carrier<T, ?> c : carriers) {
      if (c.carried().isAssignableFrom(type)) {
        return with(c.add(builder, type, test, handler));
      }
    }
    if (!messages.isAssignableFrom(type)) {
      throw new IllegalArgumentException(type + " is neither a message nor carried by one");
    }
    Class<T> direct = (Class<T>) type;
    return with(builder.onMessage(direct, m -> test.test((I) m), m -> handler.apply((I) m)));
  }

  /** Handles whatever no earlier handler took. */
  public StateBuilder<T> onAnyMessage(Function<T, Behavior<T>> handler) {
    return with(builder.onAnyMessage(handler));
  }

  public Behavior<T> build() {
    return builder.build();
  }

  private StateBuilder<T> with(BehaviorBuilder<T> b) {
    return new StateBuilder<>(messages, carriers, b);
  }
}
