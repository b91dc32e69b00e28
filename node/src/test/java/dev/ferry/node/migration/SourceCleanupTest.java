package dev.ferry.node.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * What the source copies and removes: only the VM's own files, listed in the journal; a base image
 * in a shared directory is placed on the destination but never removed; a directory that holds
 * another domain's disk is not the VM's.
 */
class SourceCleanupTest extends EngineFixture {
  static final String IMAGES = DS + "/images";

  @Test
  void aSharedBaseImageIsPlacedButNeverRemovedAndOnlyListedFilesGo() throws Exception {
    Path images = Files.createDirectories(root(src).resolve("ds0/images"));
    Files.writeString(images.resolve("base.qcow2"), "base of vm1");
    Files.writeString(images.resolve("other-vm.qcow2"), "another VM's base");
    srcImages.backing.put(Path.of(DISK), Path.of(IMAGES + "/base.qcow2"));
    // the destination has no such file yet
    srcRunner.onFirst(
        ScriptedProcessRunner.remoteStartsWith("test -e "),
        ScriptedProcessRunner.Reply.fail(1, ""));

    MigrationResult r = run("m-shared", rsyncFinal()).result();

    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    List<List<String>> placed =
        srcRunner.invocations().stream()
            .filter(a -> a.contains("--ignore-existing") && a.contains(IMAGES + "/base.qcow2"))
            .toList();
    assertEquals(1, placed.size(), "the base is copied only where it is missing: " + placed);
    assertTrue(placed.get(0).contains("--mkpath"), placed.toString());
    JournalEntry.Started started =
        (JournalEntry.Started) journal(src).read("m-shared", MigrationJournal.Role.SOURCE).get(0);
    assertEquals(
        List.of(DS + "/vm1"), started.manifest().directories(), "only the VM's own directory");
    assertEquals(List.of(IMAGES + "/base.qcow2"), started.manifest().sharedFiles());
    assertTrue(
        started.manifest().files().containsAll(List.of(DISK, DS + "/vm1/deployment.0")),
        started.manifest().files().toString());
    assertFalse(
        started.manifest().files().stream().anyMatch(f -> f.startsWith(IMAGES)),
        "a shared file is never listed for removal");
    Awaitility.await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(
            () -> assertFalse(Files.exists(root(src).resolve("ds0/vm1")), "the VM's own went"));
    assertTrue(Files.exists(images.resolve("base.qcow2")), "the shared base stays on the source");
    assertTrue(Files.exists(images.resolve("other-vm.qcow2")), "so does another VM's file");
  }

  @Test
  void aDirectoryHoldingAnotherDomainsDiskIsRefusedAndNothingIsCopied() {
    srcHv.addRunning("neighbour", 65536, List.of(DS + "/vm1/neighbour.qcow2"));

    MigrationResult r = run("m-neighbour", rsyncFinal()).result();

    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(
        r.message().contains("also holds " + DS + "/vm1/neighbour.qcow2 of domain neighbour"),
        r.message());
    assertTrue(
        srcRunner.invocations().stream().noneMatch(a -> a.contains("rsync")), "nothing copied");
    assertTrue(Files.exists(root(src).resolve("ds0/vm1/disk.0")));
  }

  @Test
  void aDifferentFileOfTheSameNameOnTheDestinationIsNeitherOverwrittenNorUsed() throws Exception {
    Path images = Files.createDirectories(root(src).resolve("ds0/images"));
    Files.writeString(images.resolve("base.qcow2"), "base of vm1");
    srcImages.backing.put(Path.of(DISK), Path.of(IMAGES + "/base.qcow2"));
    srcRunner
        .onFirst(
            ScriptedProcessRunner.remoteStartsWith("test -e "), ScriptedProcessRunner.Reply.ok())
        .onFirst(
            ScriptedProcessRunner.remoteStartsWith("sha256sum "),
            ScriptedProcessRunner.Reply.ok("a".repeat(64) + "  " + IMAGES + "/base.qcow2"))
        .onFirst(
            argv -> argv.get(0).equals("sha256sum"),
            ScriptedProcessRunner.Reply.ok("b".repeat(64) + "  " + IMAGES + "/base.qcow2"));

    MigrationResult r = run("m-differs", rsyncFinal()).result();

    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(
        r.message().contains(IMAGES + "/base.qcow2 exists on " + dst + " and differs"),
        r.message());
    assertTrue(
        srcRunner.invocations().stream().noneMatch(a -> a.contains("--ignore-existing")),
        "not copied over the destination's file");
    assertTrue(Files.exists(images.resolve("base.qcow2")));
  }
}
