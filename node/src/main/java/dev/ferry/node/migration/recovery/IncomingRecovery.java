package dev.ferry.node.migration.recovery;

import static dev.ferry.node.migration.recovery.Journals.has;
import static dev.ferry.node.migration.recovery.Journals.started;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.libvirt.DomainState;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.migration.destination.DestinationHost;
import dev.ferry.protocol.Manifest;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;

/**
 * The destination side of a restart: each unfinished incoming migration, decided from its journal
 * and the domain's state here. A VM verified or resumed here is adopted; an overlay VM on its chain
 * gets its merge finished (returned to the caller); a VM paused here after the switchover is left
 * for the source, which takes it back; otherwise what the migration created here is removed.
 */
final class IncomingRecovery {
  private final HostPorts services;
  private final Logger log;

  IncomingRecovery(HostPorts services, Logger log) {
    this.services = services;
    this.log = log;
  }

  /** The VM lives here: its directories become its own and the incoming migration ends. */
  private void adopt(String id, DestinationHost target, Manifest m, String detail)
      throws IOException {
    target.adopt(m);
    services
        .journal()
        .append(
            id,
            MigrationJournal.Role.TARGET,
            new JournalEntry.IncomingEnded(JournalEntry.IncomingEnd.RUNNING, detail));
  }

  Optional<Manifest> recoverTarget(String id) {
    List<JournalEntry> entries = services.journal().read(id, MigrationJournal.Role.TARGET);
    Optional<Manifest> manifest = started(entries).map(JournalEntry.Started::manifest);
    if (manifest.isEmpty()) {
      return Optional.empty();
    }
    Manifest m = manifest.get();
    DestinationHost target = new DestinationHost(services);
    try {
      DomainState state = target.state(m.vm());
      if (has(entries, JournalEntry.Incoming.VERIFIED)) {
        adopt(id, target, m, "adopted on restart");
        return Optional.empty();
      }
      if (has(entries, JournalEntry.Incoming.OVERLAYS_CREATED) && state.active()) {
        // overlay strategy: the VM runs here on its temporary chain; finish the merge
        log.info("{}: {} runs here on its overlays; finishing the merge", id, m.vm());
        return Optional.of(m);
      }
      if (has(entries, JournalEntry.Incoming.RESUMED) && state == DomainState.RUNNING) {
        // resumed here after the files were verified: the VM lives here now
        adopt(id, target, m, "resumed before the agent stopped; adopted");
        return Optional.empty();
      }
      if ((has(entries, JournalEntry.Incoming.RESUMED)
              || has(entries, JournalEntry.Incoming.PAUSED))
          && state.active()) {
        log.warn(
            "{}: {} is {} here after the switchover; the source takes it back through this"
                + " host's libvirt (or an operator decides)",
            id,
            m.vm(),
            state);
        return Optional.empty();
      }
      // not here (taken back by the source, or libvirt ended the incoming migration): what this
      // migration created here goes
      if (state.active()) {
        log.error(
            "{}: {} is {} here but the journal shows no switchover; left alone", id, m.vm(), state);
        return Optional.empty();
      }
      List<String> removed = target.cleanup(m);
      services
          .journal()
          .append(
              id,
              MigrationJournal.Role.TARGET,
              new JournalEntry.IncomingEnded(
                  JournalEntry.IncomingEnd.ABORTED,
                  "cleaned up on restart: " + removed.size() + " file(s)"));
      log.info(
          "{}: removed {} leftover file(s) of an incoming migration of {}",
          id,
          removed.size(),
          m.vm());
    } catch (Exception e) {
      log.error("{}: cleaning up the incoming migration failed: {}", id, e.getMessage());
    }
    return Optional.empty();
  }
}
