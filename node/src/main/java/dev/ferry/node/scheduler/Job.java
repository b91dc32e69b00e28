package dev.ferry.node.scheduler;

import dev.ferry.protocol.CborSerializable;
import dev.ferry.protocol.MigrationProgress;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.JobView;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import java.util.Comparator;

/**
 * One scheduled migration, as journaled. Immutable: every change is a new value.
 *
 * @param seq submission order, unique
 * @param groupSeq the order of the group it belongs to: its drain's, or its own
 * @param diskBytes allocated bytes of its disks (charged to the destination's datastore)
 * @param memoryBytes its RAM
 * @param vcpus its virtual CPUs
 */
record Job(
    String id,
    MigrationRequest request,
    String idempotencyKey,
    long seq,
    long groupSeq,
    long diskBytes,
    long memoryBytes,
    int vcpus,
    JobState state,
    long bandwidth,
    long submittedAtMillis,
    long startedAtMillis,
    long finishedAtMillis,
    MigrationResult result,
    String message)
    implements CborSerializable {

  /**
   * Queue order: priority, then FIFO by group; inside a drain the largest first, so the long copies
   * start early and the drain's tail is short.
   */
  static final Comparator<Job> QUEUE_ORDER =
      Comparator.comparingInt((Job j) -> j.request().priority().ordinal())
          .thenComparingLong(Job::groupSeq)
          .thenComparingLong(j -> j.request().priority() == Priority.DRAIN ? -j.bytes() : 0)
          .thenComparingLong(Job::seq);

  /** What the migration is charged: disk plus RAM. */
  long bytes() {
    return diskBytes + memoryBytes;
  }

  String vm() {
    return request.vm();
  }

  String source() {
    return request.source();
  }

  String destination() {
    return request.destination();
  }

  /**
   * Where the VM runs after this job: the agent's word when it ended (the truth, even if the
   * scheduler's journal lost the start it decided), else the destination it was started towards.
   */
  String landedOn() {
    return result != null && result.runningOn() != null && !result.runningOn().isEmpty()
        ? result.runningOn()
        : destination();
  }

  /** Started towards {@code destination} (placement's choice when the request left it empty). */
  Job started(String destination, long bandwidth, long at) {
    return new Job(
        id,
        new MigrationRequest(
            request.vm(),
            request.source(),
            destination,
            request.options(),
            request.priority(),
            request.origin()),
        idempotencyKey,
        seq,
        groupSeq,
        diskBytes,
        memoryBytes,
        vcpus,
        JobState.RUNNING,
        bandwidth,
        submittedAtMillis,
        at,
        0,
        null,
        message);
  }

  Job ended(JobState state, MigrationResult result, String message, long at) {
    return new Job(
        id,
        request,
        idempotencyKey,
        seq,
        groupSeq,
        diskBytes,
        memoryBytes,
        vcpus,
        state,
        bandwidth,
        submittedAtMillis,
        startedAtMillis,
        at,
        result,
        message);
  }

  JobView view(MigrationProgress progress, String waitingFor) {
    return new JobView(
        id,
        request,
        state,
        bytes(),
        bandwidth,
        submittedAtMillis,
        startedAtMillis,
        finishedAtMillis,
        state == JobState.QUEUED ? waitingFor : null,
        state == JobState.RUNNING ? progress : null,
        result,
        message);
  }
}
