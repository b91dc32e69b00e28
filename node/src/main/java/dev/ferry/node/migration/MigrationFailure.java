package dev.ferry.node.migration;

/** A step of a migration failed for a reason a human should read as is. */
public final class MigrationFailure extends RuntimeException {
  public MigrationFailure(String message) {
    super(message);
  }

  public MigrationFailure(String message, Throwable cause) {
    super(message, cause);
  }

  /** The message of the root cause, for results: not a stack trace. */
  public static String reason(Throwable t) {
    Throwable c = t;
    while ((c instanceof java.util.concurrent.CompletionException
            || c instanceof java.util.concurrent.ExecutionException)
        && c.getCause() != null) {
      c = c.getCause();
    }
    return c.getMessage() == null ? c.getClass().getSimpleName() : c.getMessage();
  }
}
