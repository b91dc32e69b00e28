package dev.ferry.node.process;

/** A process ended with an exit code its spec does not accept, or timed out. */
public final class ProcessFailedException extends RuntimeException {
  private final transient ProcessResult result;

  public ProcessFailedException(ProcessResult result) {
    super(result.describe());
    this.result = result;
  }

  public ProcessResult result() {
    return result;
  }
}
