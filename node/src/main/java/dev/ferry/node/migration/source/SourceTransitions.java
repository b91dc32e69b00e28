package dev.ferry.node.migration.source;

import static dev.ferry.protocol.MigrationPhase.BULK_COPY;
import static dev.ferry.protocol.MigrationPhase.CREATING_OVERLAYS;
import static dev.ferry.protocol.MigrationPhase.DIRTY_TRACKING;
import static dev.ferry.protocol.MigrationPhase.DROPPING_METADATA;
import static dev.ferry.protocol.MigrationPhase.FINAL_SYNC;
import static dev.ferry.protocol.MigrationPhase.FINISHED;
import static dev.ferry.protocol.MigrationPhase.MEMORY_MIGRATION;
import static dev.ferry.protocol.MigrationPhase.MERGING;
import static dev.ferry.protocol.MigrationPhase.MIGRATING_BACK;
import static dev.ferry.protocol.MigrationPhase.PREFLIGHT;
import static dev.ferry.protocol.MigrationPhase.PREPARING_DESTINATION;
import static dev.ferry.protocol.MigrationPhase.QUEUED;
import static dev.ferry.protocol.MigrationPhase.ROLLING_BACK;
import static dev.ferry.protocol.MigrationPhase.SHUTTING_DOWN;
import static dev.ferry.protocol.MigrationPhase.SOURCE_CLEANUP;
import static dev.ferry.protocol.MigrationPhase.STARTING;
import static dev.ferry.protocol.MigrationPhase.VERIFYING;
import static dev.ferry.protocol.MigrationPhase.VERIFYING_COPIES;

import dev.ferry.protocol.MigrationPhase;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

/**
 * The phases an outgoing migration may move between, for every strategy; {@link
 * SourceMigration#enter} refuses any other move. {@code finished} is reachable from every phase (a
 * result is always possible) and leads nowhere.
 *
 * <pre>
 * from                   to                                                   strategy
 * queued                 preflight
 * preflight              preparing-destination                                all
 * preparing-destination  dirty-tracking | bulk-copy                           suspend-sync
 *                        dropping-metadata | creating-overlays                overlay
 *                        shutting-down                                        cold
 * dirty-tracking         bulk-copy                                            suspend-sync
 * shutting-down          bulk-copy                                            cold
 * creating-overlays      bulk-copy                                            overlay
 * dropping-metadata      creating-overlays                                    overlay
 *                        memory-migration                                     suspend-sync
 * bulk-copy              dropping-metadata | memory-migration                 suspend-sync
 *                        verifying-copies                                     overlay, cold
 * verifying-copies       memory-migration                                     overlay
 *                        starting                                             cold
 * memory-migration       final-sync                                           suspend-sync
 *                        merging                                              overlay
 * final-sync             final-sync (next attempt) | verifying | migrating-back
 * verifying              final-sync (next attempt) | source-cleanup | migrating-back
 * merging                source-cleanup                                       overlay
 * starting               source-cleanup                                       cold
 * rolling-back           final-sync (the memory migration completed before the abort took effect)
 * every phase before the switchover, and memory-migration, starting: rolling-back
 * </pre>
 */
final class SourceTransitions {
  private SourceTransitions() {}

  private static final Map<MigrationPhase, Set<MigrationPhase>> ALLOWED =
      new EnumMap<>(MigrationPhase.class);

  static {
    allow(QUEUED, PREFLIGHT);
    allow(PREFLIGHT, PREPARING_DESTINATION);
    allow(
        PREPARING_DESTINATION,
        DIRTY_TRACKING,
        BULK_COPY,
        DROPPING_METADATA,
        CREATING_OVERLAYS,
        SHUTTING_DOWN,
        ROLLING_BACK);
    allow(DIRTY_TRACKING, BULK_COPY, ROLLING_BACK);
    allow(SHUTTING_DOWN, BULK_COPY, ROLLING_BACK);
    allow(CREATING_OVERLAYS, BULK_COPY, ROLLING_BACK);
    allow(DROPPING_METADATA, CREATING_OVERLAYS, MEMORY_MIGRATION, ROLLING_BACK);
    allow(BULK_COPY, DROPPING_METADATA, MEMORY_MIGRATION, VERIFYING_COPIES, ROLLING_BACK);
    allow(VERIFYING_COPIES, MEMORY_MIGRATION, STARTING, ROLLING_BACK);
    allow(MEMORY_MIGRATION, FINAL_SYNC, MERGING, ROLLING_BACK, MIGRATING_BACK);
    allow(FINAL_SYNC, FINAL_SYNC, VERIFYING, MIGRATING_BACK);
    allow(VERIFYING, FINAL_SYNC, SOURCE_CLEANUP, MIGRATING_BACK);
    allow(MERGING, SOURCE_CLEANUP);
    allow(STARTING, SOURCE_CLEANUP, ROLLING_BACK);
    allow(ROLLING_BACK, FINAL_SYNC);
    // a takeover (the destination's agent stopped) finds the VM verified and running there
    allow(MIGRATING_BACK, SOURCE_CLEANUP);
    allow(SOURCE_CLEANUP);
    ALLOWED.put(FINISHED, EnumSet.noneOf(MigrationPhase.class));
  }

  private static void allow(MigrationPhase from, MigrationPhase... to) {
    Set<MigrationPhase> next = EnumSet.of(FINISHED);
    next.addAll(Set.of(to));
    ALLOWED.put(from, next);
  }

  static boolean allowed(MigrationPhase from, MigrationPhase to) {
    return ALLOWED.getOrDefault(from, Set.of()).contains(to);
  }

  /** Throws when the table does not allow {@code from → to}: a flow is wrong, not the world. */
  static void check(MigrationPhase from, MigrationPhase to) {
    if (!allowed(from, to)) {
      throw new IllegalStateException(
          "an outgoing migration may not move from " + from + " to " + to);
    }
  }
}
