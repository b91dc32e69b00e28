package dev.ferry.node.journal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.protocol.DiskResult;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.ManifestSnapshot;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import dev.ferry.protocol.MigrationStrategy;
import dev.ferry.protocol.SnapshotEntry;
import dev.ferry.protocol.Verification;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
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
        4096,
        List.of("/ds/vm1/disk.0", "/ds/vm1/deployment.0"));
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

  static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

  /** One record of every type, so a type without a name or a constructor fails here. */
  static List<JournalEntry> oneOfEach() {
    List<JournalEntry> all =
        List.of(
            new JournalEntry.Started(manifest(), MigrationOptions.defaults()),
            new JournalEntry.PhaseEntered(MigrationPhase.BULK_COPY, "copying"),
            new JournalEntry.TargetReady("pekko://ferry@h2/user/x", "host2"),
            new JournalEntry.BitmapsAdded("ferry-m1"),
            new JournalEntry.MetadataDropping(),
            new JournalEntry.OverlaysCreated(),
            new JournalEntry.Copied("{vda=1}"),
            new JournalEntry.ColdShutdown(),
            new JournalEntry.ShutOff(),
            new JournalEntry.ColdStartRequested(),
            new JournalEntry.ColdStarted(),
            new JournalEntry.MemoryStarted(),
            new JournalEntry.SwitchedOver("paused"),
            new JournalEntry.FinalSynced("{vda=bitmap-delta}"),
            new JournalEntry.Acknowledged(),
            new JournalEntry.RollingBack("cancelled"),
            new JournalEntry.MigratingBack("verification failed"),
            new JournalEntry.IncomingStep(JournalEntry.Incoming.VERIFIED, "ok; ok"),
            // the two that end a migration, last
            new JournalEntry.IncomingEnded(JournalEntry.IncomingEnd.ABORTED, "released"),
            new JournalEntry.Finished(result()));
    Set<Class<?>> covered = new HashSet<>();
    all.forEach(e -> covered.add(e.getClass()));
    assertEquals(
        Set.of(JournalEntry.class.getPermittedSubclasses()), covered, "a record type is missing");
    return all;
  }

  @Test
  void everyKindOfEntryRoundTrips() {
    FileMigrationJournal j = new FileMigrationJournal(dir, JSON);
    List<JournalEntry> all = oneOfEach();
    for (JournalEntry e : all.subList(0, all.size() - 2)) {
      assertFalse(e.terminal(), e.toString());
      j.append("m1", MigrationJournal.Role.SOURCE, e);
    }
    assertEquals(List.of("m1"), j.unfinished(MigrationJournal.Role.SOURCE));
    j.append("m1", MigrationJournal.Role.SOURCE, all.get(all.size() - 2));
    j.append("m1", MigrationJournal.Role.SOURCE, all.get(all.size() - 1));

    assertEquals(all, j.read("m1", MigrationJournal.Role.SOURCE));
    assertEquals(List.of(), j.unfinished(MigrationJournal.Role.SOURCE));
    assertEquals(List.of(), j.all(MigrationJournal.Role.TARGET));
  }

  @Test
  void aTornLastRecordIsDroppedAndTheOthersKept() throws Exception {
    FileMigrationJournal j = new FileMigrationJournal(dir, JSON);
    j.append("m2", MigrationJournal.Role.TARGET, new JournalEntry.Started(manifest(), null));
    j.append(
        "m2",
        MigrationJournal.Role.TARGET,
        new JournalEntry.IncomingStep(JournalEntry.Incoming.PREPARED, null));
    byte[] whole =
        FileMigrationJournal.frame(
            JSON.writeValueAsBytes(
                new JournalEntry.IncomingStep(JournalEntry.Incoming.ARMED, "é")));
    // the agent died in the middle of the last record, inside a two-byte character
    int cut = whole.length - 4;
    Files.write(
        dir.resolve("m2.target.jsonl"), Arrays.copyOf(whole, cut), StandardOpenOption.APPEND);
    List<JournalEntry> read = j.read("m2", MigrationJournal.Role.TARGET);
    assertEquals(2, read.size());
    // the restarted agent appends after the torn record: its record is not glued to the torn one
    j.append(
        "m2",
        MigrationJournal.Role.TARGET,
        new JournalEntry.IncomingEnded(JournalEntry.IncomingEnd.ABORTED, "cleaned up on restart"));
    List<JournalEntry> after = j.read("m2", MigrationJournal.Role.TARGET);
    assertEquals(3, after.size());
    assertTrue(after.get(2).terminal());
    assertTrue(
        read.get(1) instanceof JournalEntry.IncomingStep s
            && s.step() == JournalEntry.Incoming.PREPARED);
  }

  @Test
  void aDamagedRecordIsSkippedAndTheRecordsAfterItAreRead() throws Exception {
    FileMigrationJournal j = new FileMigrationJournal(dir, JSON);
    j.append("m3", MigrationJournal.Role.SOURCE, new JournalEntry.Started(manifest(), null));
    j.append("m3", MigrationJournal.Role.SOURCE, new JournalEntry.BitmapsAdded("ferry-m3"));
    j.append("m3", MigrationJournal.Role.SOURCE, new JournalEntry.MetadataDropping());
    Path f = dir.resolve("m3.source.jsonl");
    byte[] b = Files.readAllBytes(f);
    // flip one byte inside the second record's JSON: its checksum no longer matches
    int second = indexOf(b, (byte) '\n', 0) + 1;
    int at = indexOf(b, (byte) 'f', second);
    b[at] = 'g';
    Files.write(f, b);
    List<JournalEntry> read = j.read("m3", MigrationJournal.Role.SOURCE);
    assertEquals(2, read.size());
    assertTrue(read.get(0) instanceof JournalEntry.Started);
    assertTrue(read.get(1) instanceof JournalEntry.MetadataDropping);
  }

  @Test
  void aJournalOfTheFirstFormatIsReadAsTypedRecords() throws Exception {
    Files.writeString(
        dir.resolve("m4.source.jsonl"),
        "{\"atMillis\":1,\"event\":\"started\",\"phase\":\"preflight\",\"manifest\":"
            + JSON.writeValueAsString(manifest())
            + "}\n"
            + "{\"atMillis\":2,\"event\":\"phase\",\"phase\":\"bulk-copy\",\"detail\":\"copying\"}\n"
            + "{\"atMillis\":3,\"event\":\"bitmaps-added\",\"phase\":\"dirty-tracking\",\"facts\":{\"bitmap\":\"ferry-m4\"}}\n"
            + "{\"atMillis\":4,\"event\":\"overlays-created\",\"phase\":\"creating-overlays\"}\n");
    Files.writeString(
        dir.resolve("m4.target.jsonl"),
        "{\"atMillis\":5,\"event\":\"overlays-created\",\"phase\":\"overlays-created\"}\n"
            + "{\"atMillis\":6,\"event\":\"finished\",\"phase\":\"aborted\",\"detail\":\"released\"}\n");
    FileMigrationJournal j = new FileMigrationJournal(dir, JSON);
    assertEquals(
        List.of(
            new JournalEntry.Started(1, manifest(), null),
            new JournalEntry.PhaseEntered(2, MigrationPhase.BULK_COPY, "copying"),
            new JournalEntry.BitmapsAdded(3, "ferry-m4"),
            new JournalEntry.OverlaysCreated(4)),
        j.read("m4", MigrationJournal.Role.SOURCE));
    assertEquals(
        List.of(
            new JournalEntry.IncomingStep(5, JournalEntry.Incoming.OVERLAYS_CREATED, null),
            new JournalEntry.IncomingEnded(6, JournalEntry.IncomingEnd.ABORTED, "released")),
        j.read("m4", MigrationJournal.Role.TARGET));
    assertEquals(List.of(), j.unfinished(MigrationJournal.Role.TARGET));
  }

  @Test
  void anAppendThatCannotBeWrittenIsAJournalException() throws Exception {
    FileMigrationJournal j = new FileMigrationJournal(dir, JSON);
    // a directory where the journal file should be: every open for writing fails
    Files.createDirectory(dir.resolve("m5.source.jsonl"));
    assertThrows(
        JournalException.class,
        () -> j.append("m5", MigrationJournal.Role.SOURCE, new JournalEntry.Acknowledged()));
  }

  private static int indexOf(byte[] b, byte c, int from) {
    for (int i = from; i < b.length; i++) {
      if (b[i] == c) {
        return i;
      }
    }
    throw new AssertionError("not found");
  }
}
