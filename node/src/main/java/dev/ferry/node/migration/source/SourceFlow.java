package dev.ferry.node.migration.source;

/**
 * A flow of an outgoing migration: the coordinator (shared handling, the other flows) and the
 * migration's collaborators. A flow keeps no state of its own: its states are methods, and what
 * they learn goes into the facts.
 */
abstract class SourceFlow extends SourceParts {
  final SourceMigration migration;

  SourceFlow(SourceMigration migration) {
    super(migration);
    this.migration = migration;
  }
}
