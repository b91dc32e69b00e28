package dev.ferry.node.metrics;

import java.util.concurrent.CompletionStage;

/**
 * Metrics that must be fetched (from the scheduler singleton, say) before they can be written. The
 * stage completes once they are in {@code text}; it must not fail: a source that cannot answer
 * writes that it could not.
 */
@FunctionalInterface
public interface MetricsSource {
  CompletionStage<Void> appendTo(MetricsText text);

  MetricsSource NONE = text -> java.util.concurrent.CompletableFuture.completedFuture(null);
}
