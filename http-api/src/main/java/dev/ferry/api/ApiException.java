package dev.ferry.api;

/** A request the API refuses before it reaches any actor; becomes a {@link Problem}. */
final class ApiException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  final transient Problem problem;

  ApiException(Problem problem) {
    super(problem.detail());
    this.problem = problem;
  }

  static ApiException invalid(String detail) {
    return new ApiException(Problem.of(422, "invalid-request", "The request is not valid", detail));
  }

  static ApiException malformed(String detail) {
    return new ApiException(
        Problem.of(
            400,
            "malformed-request",
            "The request body is not valid JSON for this resource",
            detail));
  }
}
