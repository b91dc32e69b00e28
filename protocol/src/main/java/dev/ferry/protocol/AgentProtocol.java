package dev.ferry.protocol;

import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * What a node agent (one per hypervisor host) answers to. Each agent registers with the
 * Receptionist under {@link #agentKey(String)} for its host name and under {@link #AGENTS}.
 */
public final class AgentProtocol {
  private AgentProtocol() {}

  public static final ServiceKey<Command> AGENTS = ServiceKey.create(Command.class, "ferry-agents");

  public static ServiceKey<Command> agentKey(String host) {
    return ServiceKey.create(Command.class, "ferry-agent-" + host);
  }

  /** Messages to an agent. */
  public sealed interface Command extends CborSerializable {}

  /**
   * Migrate {@code vm}, which runs on this agent's host, to {@code destination}. Idempotent: the
   * same id while it runs subscribes {@code replyTo}; after it ended, replies with its result.
   */
  public record StartMigration(
      String migrationId,
      String vm,
      String destination,
      MigrationOptions options,
      ActorRef<MigrationEvent> replyTo)
      implements Command {}

  /** Subscribe to a migration's events (or get its result, if it ended). */
  public record WatchMigration(String migrationId, ActorRef<MigrationEvent> replyTo)
      implements Command {}

  /**
   * Cancel a migration. Before the switchover it rolls back; after it, cancel is refused because
   * undoing would be riskier than finishing.
   */
  public record CancelMigration(String migrationId, String reason, ActorRef<CancelReply> replyTo)
      implements Command {}

  public record CancelReply(String migrationId, boolean accepted, String message)
      implements CborSerializable {}

  /** From a source agent: get ready to receive the VM described by the manifest. */
  public record PrepareIncoming(
      Manifest manifest, MigrationOptions options, ActorRef<DestinationProtocol.Reply> replyTo)
      implements Command {}

  /**
   * Where an incoming migration stands on this host, from its journal: how a source learns that a
   * restarted destination agent finished what its predecessor started.
   */
  public record QueryIncoming(String migrationId, ActorRef<IncomingStatus> replyTo)
      implements Command {}

  /**
   * @param state {@code unknown}, {@code in-progress}, {@code merged} (running on its own files
   *     here, verified) or {@code aborted}
   */
  public record IncomingStatus(
      String migrationId,
      String state,
      Verification verification,
      long resumedAtMillis,
      String detail)
      implements CborSerializable {}

  /**
   * Take an internal snapshot of a VM on this host. Refused while the VM is being migrated: with
   * the overlay strategy its disks sit on a temporary two-file chain, and a snapshot taken there
   * lands in the overlay and is lost at the merge.
   */
  public record CreateSnapshot(String vm, String name, ActorRef<SnapshotReply> replyTo)
      implements Command {}

  public record SnapshotReply(String vm, String name, boolean created, String message)
      implements CborSerializable {}

  /** Host capacity and use, for placement. */
  public record GetInventory(ActorRef<HostInventory> replyTo) implements Command {}
}
