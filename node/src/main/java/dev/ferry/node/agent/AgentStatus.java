package dev.ferry.node.agent;

import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Extension;
import org.apache.pekko.actor.typed.ExtensionId;

/**
 * Where this node's agent stands, for the readiness probe: it may take migrations only once its
 * recovery has run and until it stops. One per actor system; a node without an agent stays {@link
 * State#ABSENT}.
 */
public final class AgentStatus implements Extension {
  /** The agent's states, in the order it goes through them. */
  public enum State {
    /** no agent on this node (a control node) */
    ABSENT,
    /** reading the journals and libvirt after a start */
    RECOVERING,
    /** takes and runs migrations */
    READY,
    /** refuses new migrations, lets running ones end (SIGTERM) */
    STOPPING,
    /** stopped */
    DOWN
  }

  private final AtomicReference<State> state = new AtomicReference<>(State.ABSENT);

  public State state() {
    return state.get();
  }

  void set(State s) {
    state.set(s);
  }

  /** Ready for the probe: an agent that is up and not stopping, or no agent at all. */
  public boolean ready() {
    State s = state.get();
    return s == State.READY || s == State.ABSENT;
  }

  public static AgentStatus get(ActorSystem<?> system) {
    return Id.INSTANCE.apply(system);
  }

  private static final class Id extends ExtensionId<AgentStatus> {
    static final Id INSTANCE = new Id();

    @Override
    public AgentStatus createExtension(ActorSystem<?> system) {
      return new AgentStatus();
    }
  }
}
