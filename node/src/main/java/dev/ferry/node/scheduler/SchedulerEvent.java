package dev.ferry.node.scheduler;

import dev.ferry.protocol.CborSerializable;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.SchedulerProtocol.DrainRequest;
import dev.ferry.protocol.SchedulerProtocol.DrainVm;
import dev.ferry.protocol.SchedulerProtocol.JobState;

/** What the scheduler journals. Replaying them rebuilds {@link SchedulerState}. */
sealed interface SchedulerEvent extends CborSerializable {

  record JobSubmitted(Job job) implements SchedulerEvent {}

  /** Admitted: the source's agent is told to start it with this bandwidth. */
  record JobStarted(String id, String destination, long bandwidth, long atMillis)
      implements SchedulerEvent {}

  /** A terminal state; its slots are free from here on, never before. */
  record JobEnded(String id, JobState state, MigrationResult result, String message, long atMillis)
      implements SchedulerEvent {}

  record DrainStarted(String id, DrainRequest request, long seq, long atMillis)
      implements SchedulerEvent {}

  /** One VM's line of a drain's report changed. */
  record DrainVmUpdated(String drainId, DrainVm vm) implements SchedulerEvent {}

  /**
   * @param state {@code completed}, {@code partial} or {@code cancelled}
   */
  record DrainEnded(String id, String state, String message, long atMillis)
      implements SchedulerEvent {}

  /** A drained host is back in service. */
  record HostEnabled(String host, long atMillis) implements SchedulerEvent {}
}
