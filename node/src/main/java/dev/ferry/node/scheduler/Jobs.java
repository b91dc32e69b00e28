package dev.ferry.node.scheduler;

import dev.ferry.node.validation.InvalidInputException;
import dev.ferry.node.validation.Names;
import dev.ferry.protocol.HostInventory;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.SchedulerProtocol.ErrorKind;
import dev.ferry.protocol.SchedulerProtocol.JobReply;
import dev.ferry.protocol.SchedulerProtocol.JobState;
import dev.ferry.protocol.SchedulerProtocol.MigrationRequest;
import dev.ferry.protocol.SchedulerProtocol.Priority;
import java.util.Optional;
import java.util.UUID;

/** Making jobs and checking requests: pure, shared by submissions, drains and rebalancing. */
final class Jobs {
  private Jobs() {}

  /**
   * A new random id, {@code prefix} and {@code hexDigits} hex digits: unique across journals, so an
   * agent never confuses a new job with an old one.
   */
  static String newId(String prefix, int hexDigits) {
    return prefix + UUID.randomUUID().toString().replace("-", "").substring(0, hexDigits);
  }

  /**
   * Why a submission is refused, checked in this order: the request itself, a migration the VM
   * already has, hosts no agent reported from, the VM not on its source. Empty when it may queue.
   */
  static Optional<JobReply> refusal(SchedulerState s, MigrationRequest r, KnownHosts known) {
    Optional<String> invalid = invalid(r);
    if (invalid.isPresent()) {
      return Optional.of(JobReply.error(ErrorKind.INVALID, invalid.get()));
    }
    Optional<Job> active = s.activeJobOf(r.vm());
    if (active.isPresent()) {
      return Optional.of(
          JobReply.error(
              ErrorKind.CONFLICT,
              r.vm()
                  + " already has migration "
                  + active.get().id()
                  + " ("
                  + active.get().state().name().toLowerCase()
                  + ")"));
    }
    Optional<String> unknown = known.unknownHosts(r.source(), r.destination());
    if (unknown.isPresent()) {
      return Optional.of(JobReply.error(ErrorKind.INVALID, unknown.get()));
    }
    if (known.vmOn(r.source(), r.vm()).isEmpty()) {
      return Optional.of(
          JobReply.error(ErrorKind.INVALID, r.vm() + " is not running on " + r.source()));
    }
    return Optional.empty();
  }

  /** A queued job for {@code r}, charged the VM's disk and memory as its inventory reports them. */
  static Job create(
      MigrationRequest r,
      String key,
      long seq,
      long groupSeq,
      HostInventory.VmInfo vm,
      long submittedAtMillis) {
    return new Job(
        newId("m-", 16),
        new MigrationRequest(
            r.vm(),
            r.source(),
            r.destination(),
            r.options() == null ? MigrationOptions.defaults() : r.options(),
            r.priority() == null ? Priority.REQUEST : r.priority(),
            r.origin() == null ? "api" : r.origin()),
        key,
        seq,
        groupSeq,
        vm.diskBytes(),
        vm.memoryBytes(),
        vm.vcpus(),
        JobState.QUEUED,
        0,
        submittedAtMillis,
        0,
        0,
        null,
        "");
  }

  /** Why a request is malformed, if it is: names, and source and destination the same host. */
  static Optional<String> invalid(MigrationRequest r) {
    try {
      Names.vmName(r.vm());
      Names.hostName("source", r.source());
      if (!r.destination().isEmpty()) {
        Names.hostName("destination", r.destination());
      }
    } catch (InvalidInputException e) {
      return Optional.of(e.getMessage());
    }
    if (r.source().equals(r.destination())) {
      return Optional.of("source and destination are the same host: " + r.source());
    }
    return Optional.empty();
  }
}
