package dev.ferry.node.migration.recovery;

import dev.ferry.node.journal.JournalEntry;
import java.util.List;
import java.util.Optional;

/** What recovery asks of a migration's journal records. */
final class Journals {
  private Journals() {}

  static boolean has(List<JournalEntry> entries, Class<? extends JournalEntry> type) {
    return entries.stream().anyMatch(type::isInstance);
  }

  static boolean has(List<JournalEntry> entries, JournalEntry.Incoming step) {
    return entries.stream()
        .anyMatch(e -> e instanceof JournalEntry.IncomingStep s && s.step() == step);
  }

  /** The last record of a type, if any. */
  static <T extends JournalEntry> Optional<T> last(List<JournalEntry> entries, Class<T> type) {
    return entries.stream().filter(type::isInstance).map(type::cast).reduce((a, b) -> b);
  }

  static Optional<JournalEntry.Started> started(List<JournalEntry> entries) {
    return entries.stream()
        .filter(JournalEntry.Started.class::isInstance)
        .map(JournalEntry.Started.class::cast)
        .filter(st -> st.manifest() != null)
        .findFirst();
  }
}
