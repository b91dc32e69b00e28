package dev.ferry.node.migration.source;

import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.libvirt.DomainSummary;
import dev.ferry.node.libvirt.Hypervisor;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.MigrationFailure;
import dev.ferry.node.migration.destination.DestinationHost;
import dev.ferry.node.migration.source.SourceMessage.PeerLooked;
import dev.ferry.node.migration.source.SourceMessage.RetryTakeover;
import dev.ferry.node.migration.source.SourceMigration.Command;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Suspend-sync: the destination's agent stopped after the switchover, with the VM paused there on
 * files that may not have had their final sync. Nothing there acts on its own any more, so the
 * source looks at the destination's libvirt itself (docs/invariants.md, I5): a VM that runs there
 * was verified and resumed by that agent before it stopped, and the move is acknowledged; a paused
 * one is migrated back, paused, and resumed here on the source's files, which nothing wrote since
 * the pause. While the destination's libvirt cannot be reached it is tried again until the takeover
 * timeout; then the job fails and names the host the VM is paused on.
 */
public final class PeerTakeover extends SourceFlow {

  /** What the source found on the destination and did. */
  public enum Found {
    /** running there: its agent verified and resumed it before it stopped */
    RUNS_THERE,
    /** it was paused there and is now back here, paused */
    BACK_HERE,
    /** no domain there, and here it waits paused (libvirt ended the incoming migration) */
    STILL_HERE,
    /** no domain there, none paused here */
    NOT_THERE
  }

  PeerTakeover(SourceMigration migration) {
    super(migration);
  }

  /**
   * The destination's migration actor stopped (its agent died or was downed). Until the guest
   * pauses here (overlay: only at libvirt's last step) the move rolls back; after a suspend-sync
   * switchover the source takes over; an overlay or cold move after it fails, naming where the VM
   * is; after the acknowledgement nothing is left to ask.
   */
  Behavior<Command> destinationStopped() {
    // the overlay memory migration is before the switchover until the guest pauses
    // here: libvirt's job is aborted and the VM keeps running on this host
    boolean guestStillHere = run.phase == MigrationPhase.MEMORY_MIGRATION && !run.switchoverStarted;
    if (run.phase.beforeSwitchover() || guestStillHere) {
      run.target = null;
      return migration.undo.rollingBack(
          MigrationOutcome.ROLLED_BACK,
          "the agent on "
              + run.destination
              + " stopped"
              + (guestStillHere ? " during the memory migration" : ""));
    }
    if (run.phase == MigrationPhase.SOURCE_CLEANUP) {
      run.target = null; // acknowledged: the VM runs there, nothing is left to ask
      return Behaviors.same();
    }
    if (!run.overlay() && !run.cold()) {
      return takingOver("the agent on " + run.destination + " stopped after the switchover");
    }
    return migration.failWithWhereabouts(
        "the agent on " + run.destination + " stopped after the switchover");
  }

  Behavior<Command> takingOver(String cause) {
    run.target = null;
    migration.enter(
        MigrationPhase.MIGRATING_BACK,
        cause + ": looking at " + run.destination + "'s libvirt",
        services.settings().migration().timeouts().peerTakeover());
    migration.stopDisks();
    return migration.afterLibvirtReturned(cause, () -> looking(cause));
  }

  private Behavior<Command> looking(String cause) {
    HostPorts ports = services;
    Manifest manifest = run.manifest;
    String destination = run.destination;
    migration.blocking(() -> lookAndBringBack(ports, manifest, destination), PeerLooked::new);
    return migration.waiting(
        migration
            .state()
            .on(PeerLooked.class, m -> looked(m, cause))
            .on(RetryTakeover.class, m -> looking(cause)),
        migration::refuseCancel,
        () ->
            cause
                + "; "
                + run.destination
                + "'s libvirt could not be reached in time; "
                + migration.whereIsTheVm());
  }

  private Behavior<Command> looked(PeerLooked m, String cause) {
    if (m.failed()) {
      ctx.getLog()
          .warn(
              "{}: taking over from {} failed, trying again: {}",
              run.vm,
              run.destination,
              MigrationFailure.reason(m.error()));
      timers.startSingleTimer(
          new RetryTakeover(), services.settings().migration().intervals().peerTakeoverRetry());
      return Behaviors.same();
    }
    return switch (m.found()) {
      case RUNS_THERE -> {
        run.note(
            "the agent on " + run.destination + " stopped after it verified and resumed " + run.vm);
        yield migration.ack.acknowledging();
      }
      case BACK_HERE ->
          migration.undo.resumingHere(
              cause + "; " + run.vm + " was paused on " + run.destination + " and taken back");
      case STILL_HERE ->
          migration.undo.resumingHere(
              cause + "; libvirt ended the incoming migration on " + run.destination);
      case NOT_THERE ->
          migration.finish(
              MigrationOutcome.FAILED,
              cause
                  + "; "
                  + run.vm
                  + " is not defined on "
                  + run.destination
                  + " any more and not running on "
                  + services.settings().host()
                  + "; its files on "
                  + services.settings().host()
                  + " are authoritative: define and start it from them");
    };
  }

  /**
   * The blocking part: on the destination's libvirt, wait for a job on the domain to end, then act
   * on its state. A paused VM there goes back through that libvirt as the destination's agent would
   * send it (images activated first, snapshot metadata dropped).
   */
  public static Found lookAndBringBack(HostPorts ports, Manifest m, String destination)
      throws Exception {
    Hypervisor peer = ports.peers().connect(destination);
    try {
      DestinationHost there = new DestinationHost(ports.on(peer));
      long deadline =
          System.nanoTime() + ports.settings().migration().timeouts().verify().toNanos();
      while (peer.lookup(m.vm()).isPresent()
          && there.jobActive(m.vm())
          && System.nanoTime() < deadline) {
        Thread.sleep(ports.settings().migration().intervals().blockJobPoll().toMillis());
      }
      DomainState state = peer.lookup(m.vm()).map(DomainSummary::state).orElse(null);
      if (state == null) {
        boolean pausedHere =
            ports
                .hypervisor()
                .lookup(m.vm())
                .map(d -> d.state() == DomainState.PAUSED)
                .orElse(false);
        return pausedHere ? Found.STILL_HERE : Found.NOT_THERE;
      }
      if (state == DomainState.RUNNING) {
        return Found.RUNS_THERE;
      }
      if (state != DomainState.PAUSED) {
        throw new MigrationFailure(m.vm() + " is " + state + " on " + destination);
      }
      there.migrateBack(m.vm(), ports.settings().host(), m);
      return Found.BACK_HERE;
    } finally {
      peer.close();
    }
  }
}
