package dev.ferry.api.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintStream;
import java.util.List;

/**
 * Progress bars for migrations, one line each: phase, bytes, rate, ETA, destination. On a terminal
 * the lines are redrawn in place; otherwise a line is printed only when it changed, so a log stays
 * readable.
 */
public final class ProgressView {
  private final PrintStream out;
  private final boolean inPlace;
  private List<String> last = List.of();

  public ProgressView(PrintStream out, boolean inPlace) {
    this.out = out;
    this.inPlace = inPlace;
  }

  /**
   * One migration's line.
   *
   * @param job the API's view of the migration (state, progress, estimatedBytes)
   * @param status what to show instead of the phase when it is not running (a drain's per-VM
   *     status, say); empty for the job's state
   * @param destination where it goes, when the caller knows better than the job (a drain's line);
   *     empty for the job's own
   */
  public static String line(String label, JsonNode job, String status, String destination) {
    String state = job.path("state").asText("?");
    JsonNode p = job.path("progress");
    long done = p.path("bytesDone").asLong(0);
    long total = Math.max(1, p.path("bytesTotal").asLong(job.path("estimatedBytes").asLong(1)));
    if (!state.equals("running")) {
      done = state.equals("queued") ? 0 : total;
    }
    int width = 28;
    int filled = (int) Math.min(width, done * width / total);
    String phase =
        state.equals("running")
            ? p.path("phase").asText("starting")
            : status.isEmpty() ? state : status;
    String dest = destination;
    if (dest.isEmpty()) {
      dest = job.path("request").path("destination").asText("");
    }
    if (dest.isEmpty()) {
      dest = job.path("result").path("runningOn").asText("");
    }
    return String.format(
        "%-11s [%s%s] %-22s %8s/%-8s %9s/s eta %5s -> %s",
        label,
        "#".repeat(filled),
        ".".repeat(width - filled),
        phase,
        mib(done),
        mib(total),
        mib(p.path("bytesPerSecond").asLong(0)),
        state.equals("running") ? eta(p.path("etaSeconds").asLong(-1)) : "-",
        dest.isEmpty() ? "?" : dest);
  }

  /**
   * The time left, or "?" while it is not known: before a rate was measured the estimate is -1, and
   * in the first seconds of a copy it can be days.
   */
  static String eta(long seconds) {
    return seconds < 0 || seconds > 24 * 3600 ? "?" : seconds + "s";
  }

  static String mib(long bytes) {
    return (bytes >> 20) + "MiB";
  }

  public void draw(List<String> lines) {
    if (!inPlace) {
      for (int i = 0; i < lines.size(); i++) {
        if (i >= last.size() || !lines.get(i).equals(last.get(i))) {
          out.println(lines.get(i));
        }
      }
    } else {
      StringBuilder b = new StringBuilder();
      if (!last.isEmpty()) {
        b.append("\033[").append(last.size()).append("A");
      }
      for (String l : lines) {
        b.append("\r\033[2K").append(l).append("\n");
      }
      out.print(b);
    }
    out.flush();
    last = List.copyOf(lines);
  }
}
