package dev.ferry.protocol;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What the scheduler (a cluster singleton) answers to. Every migration a user wants goes through
 * it: it decides when each may start under the per-host, per-link and cluster caps, starts it on
 * the source's agent, and remembers it across crashes and failovers.
 *
 * <p>Replies carry either a value or an {@link Error}; the HTTP API maps the error kind to a
 * status.
 */
public final class SchedulerProtocol {
  private SchedulerProtocol() {}

  /** Messages to the scheduler. */
  public sealed interface Command extends CborSerializable {}

  /** Who asked for a migration; in declaration order of precedence. */
  public enum Priority {
    /** The OpenNebula driver or an operator asked for this VM. */
    @JsonProperty("request")
    REQUEST,
    /** Part of a host drain. */
    @JsonProperty("drain")
    DRAIN,
    /** Proposed by a rebalancing policy. */
    @JsonProperty("rebalance")
    REBALANCE
  }

  /** Where a scheduled migration stands. */
  public enum JobState {
    @JsonProperty("queued")
    QUEUED,
    @JsonProperty("running")
    RUNNING,
    @JsonProperty("completed")
    COMPLETED,
    @JsonProperty("rolled-back")
    ROLLED_BACK,
    @JsonProperty("migrated-back")
    MIGRATED_BACK,
    @JsonProperty("cancelled")
    CANCELLED,
    @JsonProperty("failed")
    FAILED,
    /** The source's agent refused it before anything happened. */
    @JsonProperty("rejected")
    REJECTED;

    public boolean terminal() {
      return this != QUEUED && this != RUNNING;
    }

    public static JobState of(MigrationOutcome o) {
      return switch (o) {
        case COMPLETED -> COMPLETED;
        case ROLLED_BACK -> ROLLED_BACK;
        case CANCELLED -> CANCELLED;
        case MIGRATED_BACK -> MIGRATED_BACK;
        case FAILED -> FAILED;
      };
    }
  }

  /** Why a request was not taken; the API maps it to 422, 404, 409 or 503. */
  public enum ErrorKind {
    @JsonProperty("invalid")
    INVALID,
    @JsonProperty("not-found")
    NOT_FOUND,
    @JsonProperty("conflict")
    CONFLICT,
    @JsonProperty("unavailable")
    UNAVAILABLE
  }

  public record Error(ErrorKind kind, String message) implements CborSerializable {}

  /**
   * One migration as asked.
   *
   * @param destination a host name, or empty to let placement choose
   * @param origin who asked: {@code api}, {@code drain:<id>}, {@code rebalance:<id>}
   */
  public record MigrationRequest(
      String vm,
      String source,
      String destination,
      MigrationOptions options,
      Priority priority,
      String origin)
      implements CborSerializable {}

  /**
   * A migration as the scheduler knows it.
   *
   * @param estimatedBytes what it is charged: allocated disk bytes plus RAM
   * @param bandwidth the share of its links it was given (bytes/s), 0 until it starts
   * @param waitingFor while queued, what holds it back (a cap, an unreachable host)
   * @param progress the latest progress from the source's agent, while it runs
   * @param result the engine's result, once it ended on an agent
   */
  public record JobView(
      String id,
      MigrationRequest request,
      JobState state,
      long estimatedBytes,
      long bandwidth,
      long submittedAtMillis,
      long startedAtMillis,
      long finishedAtMillis,
      String waitingFor,
      MigrationProgress progress,
      MigrationResult result,
      String message)
      implements CborSerializable {}

  /** A job, or why there is none. */
  public record JobReply(JobView job, Error error) implements CborSerializable {
    public static JobReply of(JobView job) {
      return new JobReply(job, null);
    }

    public static JobReply error(ErrorKind kind, String message) {
      return new JobReply(null, new Error(kind, message));
    }
  }

  public record JobsReply(List<JobView> jobs) implements CborSerializable {
    public JobsReply {
      jobs = List.copyOf(jobs);
    }
  }

  /**
   * Queue a migration. With an idempotency key already seen, replies with that job instead; a VM
   * that already has a queued or running job is a conflict.
   */
  public record Submit(MigrationRequest request, String idempotencyKey, ActorRef<JobReply> replyTo)
      implements Command {}

  public record GetJob(String id, ActorRef<JobReply> replyTo) implements Command {}

  /**
   * @param activeOnly only queued and running jobs
   * @param limit the newest finished jobs to include at most
   */
  public record ListJobs(boolean activeOnly, int limit, ActorRef<JobsReply> replyTo)
      implements Command {}

  /**
   * Cancel: a queued job ends at once; a running one is asked to roll back (refused by the agent
   * after the switchover, when finishing is safer).
   */
  public record CancelJob(String id, String reason, ActorRef<JobReply> replyTo)
      implements Command {}

  // ---- hosts and links

  /**
   * A host as placement and admission see it.
   *
   * @param state {@code active}, {@code draining}, {@code drained} or {@code unreachable}
   * @param inventoryAgeMillis how old the agent's last inventory is; -1 if never read
   */
  public record HostView(
      String host,
      String state,
      boolean reachable,
      int cpus,
      int vcpusInUse,
      long memoryBytes,
      long freeMemoryBytes,
      long datastoreBytes,
      long datastoreFreeBytes,
      int vms,
      int outbound,
      int outboundCap,
      int inbound,
      int inboundCap,
      long inventoryAgeMillis)
      implements CborSerializable {}

  /**
   * A link: a host NIC in one direction or a named segment.
   *
   * @param capacity bytes/s
   * @param bandwidthInUse the bandwidth granted to migrations on it now
   */
  public record LinkView(
      String name, long capacity, int streams, int streamsInUse, long bandwidthInUse)
      implements CborSerializable {
    public LinkView {
      name = name == null ? "" : name;
    }
  }

  public record HostsReply(
      List<HostView> hosts, List<LinkView> links, int running, int clusterCap, int queued)
      implements CborSerializable {
    public HostsReply {
      hosts = List.copyOf(hosts);
      links = List.copyOf(links);
    }
  }

  public record GetHosts(ActorRef<HostsReply> replyTo) implements Command {}

  /** Where a VM is, by libvirt name or domain UUID, as the hosts' last inventories say. */
  public record GetVm(String vm, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * @param on every reachable host whose inventory lists the VM (running or paused there)
   */
  public record VmReply(String vm, String uuid, List<VmPlace> on) implements CborSerializable {
    public VmReply {
      on = List.copyOf(on);
    }
  }

  /** One host that has the VM: {@code running} false when it is paused (or in doubt) there. */
  public record VmPlace(String host, boolean running, long inventoryAgeMillis)
      implements CborSerializable {}

  /** Return a drained host to service: placement may choose it again. */
  public record EnableHost(String host, ActorRef<HostsReply> replyTo) implements Command {}

  // ---- drains

  /**
   * Move every VM off {@code host}.
   *
   * @param deadlineEpochMillis queued moves still waiting then are given up; 0 = none
   * @param coldFallback a VM whose live migrations fail is shut down and moved cold instead
   */
  public record DrainRequest(
      String host, long deadlineEpochMillis, boolean coldFallback, MigrationOptions options)
      implements CborSerializable {}

  /**
   * One VM of a drain.
   *
   * @param status {@code waiting} (for a host that fits), {@code queued}, {@code running}, {@code
   *     moved}, {@code failed}, {@code cancelled} or {@code given-up}
   */
  public record DrainVm(
      String vm, String status, String destination, String jobId, int attempts, String message)
      implements CborSerializable {}

  /**
   * @param state {@code running}, {@code completed}, {@code partial} or {@code cancelled}
   */
  public record DrainView(
      String id,
      DrainRequest request,
      String state,
      long startedAtMillis,
      long finishedAtMillis,
      List<DrainVm> vms,
      String message)
      implements CborSerializable {
    public DrainView {
      vms = List.copyOf(vms);
    }
  }

  public record DrainReply(DrainView drain, Error error) implements CborSerializable {
    public static DrainReply of(DrainView drain) {
      return new DrainReply(drain, null);
    }

    public static DrainReply error(ErrorKind kind, String message) {
      return new DrainReply(null, new Error(kind, message));
    }
  }

  public record DrainsReply(List<DrainView> drains) implements CborSerializable {
    public DrainsReply {
      drains = List.copyOf(drains);
    }
  }

  public record StartDrain(DrainRequest request, ActorRef<DrainReply> replyTo) implements Command {}

  public record GetDrain(String id, ActorRef<DrainReply> replyTo) implements Command {}

  public record ListDrains(ActorRef<DrainsReply> replyTo) implements Command {}

  /** Stop queuing moves; running ones finish or roll back on their own. */
  public record CancelDrain(String id, ActorRef<DrainReply> replyTo) implements Command {}

  // ---- rebalancing

  public enum Policy {
    /** Even out memory use: move VMs from the fullest hosts to the emptiest. */
    @JsonProperty("balance")
    BALANCE,
    /** Consolidate: empty the least used hosts onto the others, below a ceiling. */
    @JsonProperty("pack")
    PACK
  }

  /**
   * @param threshold balance: the spread of memory use (max - min, 0..1) to get below; pack: the
   *     use (0..1) no target host may exceed
   * @param maxMoves at most this many moves
   */
  public record RebalanceRequest(
      Policy policy, double threshold, int maxMoves, MigrationOptions options)
      implements CborSerializable {}

  /**
   * @param bytes what the move costs: allocated disk bytes plus RAM
   * @param benefit balance: the drop of the memory-use variance; pack: 1 for the host it frees
   * @param jobId set when the plan was applied
   */
  public record PlannedMove(
      String vm, String source, String destination, long bytes, double benefit, String jobId)
      implements CborSerializable {}

  /**
   * @param spreadBefore memory-use spread (max - min) before the moves
   * @param spreadAfter and after, if every move succeeds
   * @param hostsFreed pack: hosts left without VMs
   */
  public record RebalancePlan(
      Policy policy,
      List<PlannedMove> moves,
      long totalBytes,
      double spreadBefore,
      double spreadAfter,
      int hostsFreed,
      boolean applied,
      String message)
      implements CborSerializable {
    public RebalancePlan {
      moves = List.copyOf(moves);
    }
  }

  public record PlanReply(RebalancePlan plan, Error error) implements CborSerializable {}

  /** A dry run: the moves the policy would make now, with their cost and benefit. */
  public record PlanRebalance(RebalanceRequest request, ActorRef<PlanReply> replyTo)
      implements Command {}

  /** Plan as {@link PlanRebalance} does, then queue the moves at rebalance priority. */
  public record ApplyRebalance(RebalanceRequest request, ActorRef<PlanReply> replyTo)
      implements Command {}
}
