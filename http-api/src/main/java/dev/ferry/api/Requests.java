package dev.ferry.api;

import dev.ferry.node.validation.InvalidInputException;
import dev.ferry.node.validation.Names;
import dev.ferry.protocol.BulkCopyMethod;
import dev.ferry.protocol.FinalSyncMethod;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.SchedulerProtocol;
import dev.ferry.protocol.SchedulerProtocol.Policy;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.Set;

/**
 * Request bodies as clients send them, and their checks. Everything is validated here, before a
 * message is built: names against strict patterns (no shell metacharacters can pass), hosts against
 * the hosts the scheduler knows, numbers against their ranges.
 */
final class Requests {
  private Requests() {}

  /**
   * @param bandwidth bytes per second for the disk copies and the memory migration; 0 = the fair
   *     share of its links
   * @param deadline ISO-8601 instant; the migration rolls back if the switchover has not started
   */
  record Options(
      MigrationStrategy strategy,
      FinalSyncMethod finalSync,
      BulkCopyMethod bulkCopy,
      Long bandwidth,
      Long maxDowntimeMillis,
      Integer warmPasses,
      Boolean autoConverge,
      String deadline) {}

  record Submit(
      String vm, String source, String destination, Options options, String idempotencyKey) {}

  record Drain(String deadline, Boolean coldFallback, Options options) {}

  record Rebalance(Policy policy, Double threshold, Integer maxMoves, Options options) {}

  static MigrationOptions options(Options o, Duration maxDeadlineAhead) {
    MigrationOptions m = MigrationOptions.defaults();
    if (o == null) {
      return m;
    }
    if (o.strategy() != null) {
      m = m.withStrategy(o.strategy());
    }
    if (o.finalSync() != null) {
      m = m.withFinalSync(o.finalSync());
    }
    if (o.bulkCopy() != null) {
      m = m.withBulkCopy(o.bulkCopy());
    }
    if (o.bandwidth() != null) {
      if (o.bandwidth() < 0) {
        throw ApiException.invalid("options.bandwidth must be 0 or more bytes per second");
      }
      m = m.withBandwidth(o.bandwidth());
    }
    if (o.maxDowntimeMillis() != null) {
      if (o.maxDowntimeMillis() < 0 || o.maxDowntimeMillis() > 60_000) {
        throw ApiException.invalid("options.maxDowntimeMillis must be between 0 and 60000");
      }
      m = m.withMaxDowntime(o.maxDowntimeMillis());
    }
    if (o.warmPasses() != null) {
      if (o.warmPasses() < 0 || o.warmPasses() > 10) {
        throw ApiException.invalid("options.warmPasses must be between 0 and 10");
      }
      m = m.withWarmPasses(o.warmPasses());
    }
    if (o.autoConverge() != null) {
      m = m.withAutoConverge(o.autoConverge());
    }
    if (o.deadline() != null) {
      m = m.withDeadline(deadline("options.deadline", o.deadline(), maxDeadlineAhead));
    }
    return m;
  }

  /** An ISO-8601 instant between now and {@code maxAhead} from now. */
  static long deadline(String field, String value, Duration maxAhead) {
    Instant at;
    try {
      at = Instant.parse(value);
    } catch (DateTimeParseException e) {
      throw ApiException.invalid(
          field + " must be an ISO-8601 instant such as 2026-01-31T23:00:00Z, not " + clip(value));
    }
    Instant now = Instant.now();
    if (!at.isAfter(now)) {
      throw ApiException.invalid(field + " is in the past: " + clip(value));
    }
    if (at.isAfter(now.plus(maxAhead))) {
      throw ApiException.invalid(
          field + " is more than " + maxAhead.toDays() + " days ahead: " + clip(value));
    }
    return at.toEpochMilli();
  }

  /** A caller's value in a message, shortened: refusals do not echo long input back. */
  static String clip(String value) {
    return Names.printable(value);
  }

  /** The longest reason a cancel may give (it is journaled and shown with the job). */
  static final int MAX_REASON = 200;

  /** A cancel's reason: printable text of at most {@value #MAX_REASON} characters. */
  static String reason(String value) {
    if (value.length() > MAX_REASON) {
      throw ApiException.invalid("reason must be at most " + MAX_REASON + " characters");
    }
    if (value.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
      throw ApiException.invalid("reason must not contain control characters");
    }
    return value;
  }

  static String vm(String value) {
    return check(() -> Names.vmName(require("vm", value)));
  }

  static String host(String field, String value, Set<String> known) {
    String h = check(() -> Names.hostName(field, require(field, value)));
    if (!known.contains(h)) {
      throw ApiException.invalid(
          "unknown "
              + (field.equals("host") ? "" : field + " ")
              + "host "
              + h
              + " (known: "
              + String.join(", ", known)
              + ")");
    }
    return h;
  }

  static String id(String value) {
    return check(() -> Names.id("id", value));
  }

  private static String require(String field, String value) {
    if (value == null || value.isEmpty()) {
      throw ApiException.invalid(field + " is required");
    }
    return value;
  }

  private static String check(java.util.function.Supplier<String> s) {
    try {
      return s.get();
    } catch (InvalidInputException e) {
      throw ApiException.invalid(e.getMessage());
    }
  }

  static SchedulerProtocol.MigrationRequest migration(
      Submit b, Set<String> known, Duration maxDeadlineAhead) {
    if (b == null) {
      throw ApiException.malformed("a JSON object is required");
    }
    String vm = vm(b.vm());
    String source = host("source", b.source(), known);
    String destination =
        b.destination() == null || b.destination().isEmpty()
            ? ""
            : host("destination", b.destination(), known);
    if (source.equals(destination)) {
      throw ApiException.invalid("source and destination are the same host: " + source);
    }
    return new SchedulerProtocol.MigrationRequest(
        vm,
        source,
        destination,
        options(b.options(), maxDeadlineAhead),
        SchedulerProtocol.Priority.REQUEST,
        "api");
  }
}
