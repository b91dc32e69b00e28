package dev.ferry.node.migration;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.function.BiFunction;
import java.util.function.Function;
import org.apache.pekko.actor.typed.javadsl.ActorContext;

/**
 * Runs one blocking step of a migration on the blocking dispatcher and brings its typed result back
 * to the actor with {@code pipeToSelf}. The work gets only immutable inputs (captured locals); it
 * never writes actor state, which only the actor thread touches.
 */
public final class Blocking {
  private Blocking() {}

  /** A blocking step's work; it may throw, and its error comes back in the result. */
  @FunctionalInterface
  public interface Work<T> {
    T call() throws Exception;
  }

  /** A blocking step that only acts; its error (if any) comes back in the result. */
  @FunctionalInterface
  public interface Act {
    void run() throws Exception;
  }

  /** Runs {@code act}; {@code result} gets its error, or null when it succeeded. */
  public static <M> void pipe(
      ActorContext<M> ctx, Executor executor, Act act, Function<Throwable, ? extends M> result) {
    pipe(
        ctx,
        executor,
        () -> {
          act.run();
          return Boolean.TRUE;
        },
        (done, error) -> result.apply(error));
  }

  public static <T, M> void pipe(
      ActorContext<M> ctx,
      Executor executor,
      Work<T> work,
      BiFunction<? super T, Throwable, ? extends M> result) {
    ctx.pipeToSelf(
        CompletableFuture.supplyAsync(
            () -> {
              try {
                return work.call();
              } catch (RuntimeException e) {
                throw e;
              } catch (Exception e) {
                throw new CompletionException(e);
              }
            },
            executor),
        (value, error) -> result.apply(value, error));
  }
}
