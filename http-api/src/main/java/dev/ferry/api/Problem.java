package dev.ferry.api;

/**
 * An error as RFC 9457 problem details ({@code application/problem+json}).
 *
 * @param type a stable identifier of the kind of problem
 * @param title a short, fixed summary of the kind
 * @param detail what went wrong with this request, for a human
 */
public record Problem(String type, String title, int status, String detail) {

  static Problem of(int status, String kind, String title, String detail) {
    return new Problem("https://ferry.dev/problems/" + kind, title, status, detail);
  }
}
