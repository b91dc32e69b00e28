package dev.ferry.node.journal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.protocol.DiskResult;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.ManifestSnapshot;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.SnapshotEntry;
import dev.ferry.protocol.Verification;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileMigrationJournalTest {
  @TempDir Path dir;

  static Manifest manifest() {
    return new Manifest(
        "m1",
        "vm1",
        "uuid",
        "host1",
        "host2",
        131072,
        1,
        List.of(
            new ManifestDisk(
                "vda",
                "/ds/vm1/disk.0",
                "qcow2",
                true,
                1L << 30,
                1L << 20,
                1L << 20,
                List.of(new SnapshotEntry("1", "snap-0", 10, 1, 2, 3, 4)),
                List.of())),
        List.of(new ManifestSnapshot("snap-0", "", "<domainsnapshot/>")),
        "snap-0",
        List.of("/ds/vm1"),
        4096);
  }

  static MigrationResult result() {
    return new MigrationResult(
        "m1",
        "vm1",
        "host1",
        "host2",
        MigrationOutcome.COMPLETED,
        "host2",
        "verified",
        MigrationStrategy.SUSPEND_SYNC,
        List.of(new DiskResult("vda", "/ds/vm1/disk.0", "rsync", "bitmap-delta", 10, 2)),
        new Verification(true, true, true, true, List.of("ok")),
        800,
        15000,
        12345,
        1,
        2,
        List.of("snap-0"));
  }

  @Test
  void everyKindOfEntryRoundTrips() {
    FileMigrationJournal j = new FileMigrationJournal(dir);
    j.append(
        "m1",
        MigrationJournal.Role.SOURCE,
        JournalEntry.started(manifest(), MigrationOptions.defaults()));
    j.append(
        "m1",
        MigrationJournal.Role.SOURCE,
        JournalEntry.fact("bitmaps-added", "dirty-tracking", Map.of("bitmap", "ferry-m1")));
    assertEquals(List.of("m1"), j.unfinished(MigrationJournal.Role.SOURCE));
    j.append("m1", MigrationJournal.Role.SOURCE, JournalEntry.finished(result()));

    List<JournalEntry> entries = j.read("m1", MigrationJournal.Role.SOURCE);
    assertEquals(3, entries.size());
    assertEquals(manifest(), entries.get(0).manifest());
    assertEquals(MigrationOptions.defaults(), entries.get(0).options());
    assertEquals("ferry-m1", entries.get(1).facts().get("bitmap"));
    assertEquals(result(), entries.get(2).result());
    assertTrue(entries.get(2).terminal());
    assertEquals(List.of(), j.unfinished(MigrationJournal.Role.SOURCE));
    assertEquals(List.of(), j.all(MigrationJournal.Role.TARGET));
  }

  @Test
  void aTornLastLineIsIgnored() throws Exception {
    FileMigrationJournal j = new FileMigrationJournal(dir);
    j.append("m2", MigrationJournal.Role.TARGET, JournalEntry.of("prepared", "prepared", null));
    Files.writeString(
        dir.resolve("m2.target.jsonl"), "{\"atMillis\":1,\"ev", StandardOpenOption.APPEND);
    assertEquals(1, j.read("m2", MigrationJournal.Role.TARGET).size());
  }
}
