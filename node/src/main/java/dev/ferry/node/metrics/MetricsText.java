package dev.ferry.node.metrics;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Writes the Prometheus text exposition format (version 0.0.4): a HELP and TYPE line per metric
 * family, then its samples. Label values are escaped as the format requires; a family is declared
 * once however many parts of the code add samples to it.
 */
public final class MetricsText {
  /** The Content-Type Prometheus expects for this format. */
  public static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

  private final StringBuilder out = new StringBuilder();
  private final Set<String> declared = new HashSet<>();

  /**
   * Declares a family ({@code counter}, {@code gauge} or {@code histogram}) if not yet declared.
   */
  public MetricsText family(String name, String type, String help) {
    if (declared.add(name)) {
      out.append("# HELP ").append(name).append(' ').append(escapeHelp(help)).append('\n');
      out.append("# TYPE ").append(name).append(' ').append(type).append('\n');
    }
    return this;
  }

  public MetricsText sample(String name, Map<String, String> labels, double value) {
    out.append(name);
    if (!labels.isEmpty()) {
      List<String> parts = new ArrayList<>();
      new TreeMap<>(labels).forEach((k, v) -> parts.add(k + "=\"" + escapeLabel(v) + "\""));
      out.append('{').append(String.join(",", parts)).append('}');
    }
    out.append(' ').append(format(value)).append('\n');
    return this;
  }

  public MetricsText sample(String name, double value) {
    return sample(name, Map.of(), value);
  }

  @Override
  public String toString() {
    return out.toString();
  }

  static String format(double v) {
    if (Double.isInfinite(v)) {
      return v > 0 ? "+Inf" : "-Inf";
    }
    if (v == Math.rint(v) && Math.abs(v) < 1e15) {
      return Long.toString((long) v);
    }
    return String.format(Locale.ROOT, "%s", v);
  }

  private static String escapeLabel(String v) {
    return (v == null ? "" : v).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
  }

  private static String escapeHelp(String v) {
    return v.replace("\\", "\\\\").replace("\n", "\\n");
  }
}
