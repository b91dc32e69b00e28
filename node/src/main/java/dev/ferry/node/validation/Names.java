package dev.ferry.node.validation;

import java.util.regex.Pattern;

/**
 * Strict patterns for every name that reaches libvirt, a path or an argv. Anything outside them is
 * refused with a message that says what is allowed, before it reaches any actor.
 */
public final class Names {
  /** libvirt domain names as OpenNebula makes them ({@code one-42}) and as operators type them. */
  public static final Pattern VM_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");

  /** An RFC 1123 host name or a dotted IPv4 address. */
  public static final Pattern HOST_NAME =
      Pattern.compile(
          "(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
              + "(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*");

  /** Snapshot names: libvirt accepts almost anything; we accept what OpenNebula and people use. */
  public static final Pattern SNAPSHOT_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}");

  /** Migration and job ids. */
  public static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_-]{0,63}");

  private Names() {}

  public static String vmName(String value) {
    return check(
        "vm", value, VM_NAME, "1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit");
  }

  public static String hostName(String value) {
    return check("host", value, HOST_NAME, "a DNS host name or an IPv4 address");
  }

  public static String hostName(String field, String value) {
    return check(field, value, HOST_NAME, "a DNS host name or an IPv4 address");
  }

  public static String snapshotName(String value) {
    return check(
        "snapshot",
        value,
        SNAPSHOT_NAME,
        "1-128 of A-Z a-z 0-9 _ . : + -, starting with a letter or digit");
  }

  public static String id(String field, String value) {
    return check(field, value, ID, "1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit");
  }

  /** How much of a value an error message echoes. */
  public static final int ECHOED = 40;

  private static String check(String field, String value, Pattern pattern, String allowed) {
    if (value == null || value.isEmpty()) {
      throw new InvalidInputException(field, "missing (" + allowed + ")");
    }
    if (!pattern.matcher(value).matches()) {
      throw new InvalidInputException(
          field, "'" + printable(value) + "' is not valid: expected " + allowed);
    }
    return value;
  }

  /**
   * The value as it may be echoed in an error: control characters escaped, at most {@value #ECHOED}
   * characters of it (a 1 MiB value is not sent back whole).
   */
  public static String printable(String value) {
    StringBuilder sb = new StringBuilder();
    for (char c : value.toCharArray()) {
      if (sb.length() >= ECHOED) {
        sb.append("...");
        break;
      }
      sb.append(c < 0x20 || c == 0x7f ? String.format("\\x%02x", (int) c) : String.valueOf(c));
    }
    return sb.toString();
  }
}
