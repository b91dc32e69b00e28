package dev.ferry.node.journal;

import com.fasterxml.jackson.annotation.JsonInclude;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationResult;
import java.util.Map;

/**
 * One line of a migration's journal: a step that happened, with what a restarted agent needs to
 * finish or undo it. The first entry carries the manifest and options; the last of a migration that
 * ended carries its result.
 *
 * @param event what happened ({@code manifest}, {@code phase}, {@code metadata-dropped}, ...)
 * @param facts small facts for recovery (bitmap names, overlay paths, ...)
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record JournalEntry(
    long atMillis,
    String event,
    String phase,
    String detail,
    Map<String, String> facts,
    Manifest manifest,
    MigrationOptions options,
    MigrationResult result) {

  public static JournalEntry of(String event, String phase, String detail) {
    return new JournalEntry(
        System.currentTimeMillis(), event, phase, detail, null, null, null, null);
  }

  public static JournalEntry fact(String event, String phase, Map<String, String> facts) {
    return new JournalEntry(
        System.currentTimeMillis(), event, phase, null, Map.copyOf(facts), null, null, null);
  }

  public static JournalEntry started(Manifest manifest, MigrationOptions options) {
    return new JournalEntry(
        System.currentTimeMillis(), "started", "preflight", null, null, manifest, options, null);
  }

  public static JournalEntry finished(MigrationResult result) {
    return new JournalEntry(
        System.currentTimeMillis(),
        "finished",
        "finished",
        result.outcome().name(),
        null,
        null,
        null,
        result);
  }

  public boolean terminal() {
    return result != null || "finished".equals(event);
  }
}
