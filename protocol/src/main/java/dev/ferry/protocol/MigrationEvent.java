package dev.ferry.protocol;

/** What a migration tells its watchers: progress while it runs, then one result. */
public sealed interface MigrationEvent extends CborSerializable {

  String migrationId();

  record Progress(MigrationProgress progress) implements MigrationEvent {
    @Override
    public String migrationId() {
      return progress.migrationId();
    }
  }

  record Finished(MigrationResult result) implements MigrationEvent {
    @Override
    public String migrationId() {
      return result.migrationId();
    }
  }

  /** Asked about a migration this agent has no record of. */
  record Unknown(String migrationId, String message) implements MigrationEvent {}

  /** Refused before anything happened (bad input, already running elsewhere, ...). */
  record Rejected(String migrationId, String reason) implements MigrationEvent {}
}
