package dev.ferry.node.migration.destination;

/**
 * A flow of an incoming migration: the coordinator (its few facts, the other flows) and the
 * migration's collaborators.
 */
abstract class DestinationFlow extends DestinationParts {
  final DestinationMigration migration;

  DestinationFlow(DestinationMigration migration) {
    super(migration);
    this.migration = migration;
  }
}
