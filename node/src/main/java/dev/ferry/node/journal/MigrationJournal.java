package dev.ferry.node.journal;

import java.util.List;

/**
 * The event log of each migration on this host, one per migration and role. Appends are durable
 * when they return, so a restarted agent can tell where every migration was.
 */
public interface MigrationJournal {

  /** Which side of a migration this host played. */
  enum Role {
    SOURCE,
    TARGET
  }

  void append(String migrationId, Role role, JournalEntry entry);

  List<JournalEntry> read(String migrationId, Role role);

  /** Migrations in this role whose journal has no terminal entry. */
  List<String> unfinished(Role role);

  /** Every migration id with a journal in this role. */
  List<String> all(Role role);
}
