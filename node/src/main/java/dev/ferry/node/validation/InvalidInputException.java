package dev.ferry.node.validation;

/**
 * Input that fails validation; the message says which field, what was wrong and what is allowed.
 */
public final class InvalidInputException extends IllegalArgumentException {
  private final String field;

  public InvalidInputException(String field, String message) {
    super(field + ": " + message);
    this.field = field;
  }

  public String field() {
    return field;
  }
}
