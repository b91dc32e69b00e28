package dev.ferry.node.journal;

/**
 * The journal could not be written or read (disk full, I/O error). A migration that cannot journal
 * its next step must not take it: callers turn this into a rollback while one is possible.
 */
public final class JournalException extends RuntimeException {
  public JournalException(String message, Throwable cause) {
    super(message, cause);
  }
}
