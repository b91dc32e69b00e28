package dev.ferry.node.migration;

import static dev.ferry.node.process.ScriptedProcessRunner.argvContains;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.node.fakes.FakeHypervisor;
import dev.ferry.node.fakes.FakeImageTool;
import dev.ferry.node.journal.FileMigrationJournal;
import dev.ferry.node.journal.JournalEntry;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.node.process.ScriptedProcessRunner.Reply;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.ManifestDisk;
import dev.ferry.protocol.ManifestSnapshot;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;

/**
 * A restarted agent finishes or undoes what its journal and libvirt say ({@code Recovery}): the
 * typed journal, the first journal format, and a torn last record.
 */
class RecoveryTest extends EngineFixture {

  /**
   * The source agent stops during a cold move, with the guest already shut off for it: when the
   * agent starts again its journal shows the destination was never asked to boot the guest, so it
   * boots the guest again here and records the move as rolled back.
   */
  @Test
  void anAgentRestartedDuringAColdMoveBootsTheGuestAgainOnTheSource() throws Exception {
    String host = "srcr" + hostIds.incrementAndGet();
    FakeHypervisor hv = cloud.host(host);
    hv.addRunning(VM, 131072, List.of(DISK));
    hv.addSnapshot(VM, "snap-0", null);
    Files.createDirectories(root(host).resolve("ds0/vm1"));
    Files.writeString(root(host).resolve("ds0/vm1/disk.0"), "x");
    ScriptedProcessRunner hanging =
        new ScriptedProcessRunner()
            .on(argvContains("find"), Reply.ok())
            .on(argvContains("rsync"), Reply.hanging())
            .on(argvContains("tar"), Reply.hanging())
            .on(argvContains("ssh"), Reply.hanging());
    start(host, hv, new FakeImageTool(images), hanging);
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(host)
        .tell(new AgentProtocol.StartMigration("m-cold-crash", VM, dst, cold(), events.getRef()));
    boolean copying = false;
    for (int i = 0; i < 200 && !copying; i++) {
      MigrationEvent e = pollOne(events);
      if (e == null) {
        manualTime.timePasses(Duration.ofMillis(200));
      } else if (e instanceof MigrationEvent.Progress p) {
        copying = p.progress().phase() == MigrationPhase.BULK_COPY;
      }
    }
    assertTrue(copying, "reached the bulk copy");
    assertEquals(dev.ferry.node.libvirt.DomainState.SHUTOFF, hv.domains.get(VM).state);

    testKit.stop(agents.remove(agents.size() - 1));
    start(host, hv, new FakeImageTool(images), hanging);
    org.awaitility.Awaitility.await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> hv.domains.get(VM).state == dev.ferry.node.libvirt.DomainState.RUNNING);
    TestProbe<MigrationEvent> after = testKit.createTestProbe();
    agent(host).tell(new AgentProtocol.WatchMigration("m-cold-crash", after.getRef()));
    MigrationResult r = await(after).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(
        r.message().contains("cold move") && r.message().contains(VM + " started again"),
        r.message());
    assertEquals(List.of("start " + VM), hv.callsWith("start"));
    assertEquals(Set.of("snap-0"), hv.snapshotNames(VM), "its metadata was never dropped");
  }

  /**
   * Suspend-sync: the source's agent dies after the switchover, the VM paused on the destination
   * before its final sync (issue 11: the job ended failed and the guest stayed paused). The
   * restarted agent looks at both hosts' libvirt, takes the VM back and resumes it on its own
   * files; the destination removes what the migration left there.
   */
  @Test
  void aSourceAgentRestartedAfterTheSwitchoverTakesTheVmBack() throws Exception {
    extraConfig = "ferry.node.migration.fault-tests.hold-before-final-sync = 1h";
    restartAgent(src, srcHv, srcImages, srcRunner);
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(src)
        .tell(
            new AgentProtocol.StartMigration("m-src-dies", VM, dst, rsyncFinal(), events.getRef()));
    awaitPhase(events, MigrationPhase.FINAL_SYNC, "final sync held");
    assertEquals(dev.ferry.node.libvirt.DomainState.PAUSED, dstHv.domains.get(VM).state);

    extraConfig = "";
    restartAgent(src, srcHv, srcImages, srcRunner);

    TestProbe<MigrationEvent> after = testKit.createTestProbe();
    agent(src).tell(new AgentProtocol.WatchMigration("m-src-dies", after.getRef()));
    MigrationResult r = await(after).result();
    assertEquals(MigrationOutcome.MIGRATED_BACK, r.outcome(), r.message());
    assertEquals(src, r.runningOn());
    assertTrue(r.message().contains("was taken back from " + dst), r.message());
    assertEquals(dev.ferry.node.libvirt.DomainState.RUNNING, srcHv.domains.get(VM).state);
    assertEquals(Set.of("snap-0", "snap-1"), srcHv.snapshotNames(VM));
    assertFalse(dstHv.domains.containsKey(VM));
    org.awaitility.Awaitility.await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> !Files.exists(root(dst).resolve("ds0/vm1")));
  }

  private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

  /** A host whose agent stopped while migrating vm1 away, with its snapshot metadata dropped. */
  private FakeHypervisor stoppedMidMigration(String host) throws IOException {
    FakeHypervisor hv = cloud.host(host);
    hv.addRunning(VM, 131072, List.of(DISK));
    hv.addSnapshot(VM, "snap-0", null);
    hv.deleteSnapshotMetadata(VM, "snap-0");
    hv.calls.clear();
    Files.createDirectories(root(host).resolve("ds0/vm1"));
    Files.writeString(root(host).resolve("ds0/vm1/disk.0"), "x");
    Files.createDirectories(root(host).resolve("journal"));
    return hv;
  }

  private static Manifest manifest(String id, String host) {
    return new Manifest(
        id,
        VM,
        "uuid-1",
        host,
        "gone-host",
        131072,
        1,
        List.of(
            new ManifestDisk(
                "vda", DISK, "qcow2", true, 1L << 30, 1L << 20, 1L << 20, List.of(), List.of())),
        List.of(
            new ManifestSnapshot(
                "snap-0", "", "<domainsnapshot><name>snap-0</name></domainsnapshot>")),
        "snap-0",
        List.of(DS + "/" + VM),
        0,
        List.of(DISK));
  }

  /** The result the agent answers for a migration that ended (here: in its recovery). */
  private MigrationResult resultOf(String host, String id) {
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(host).tell(new AgentProtocol.WatchMigration(id, events.getRef()));
    MigrationEvent e = events.receiveMessage();
    assertTrue(e instanceof MigrationEvent.Finished, e.toString());
    return ((MigrationEvent.Finished) e).result();
  }

  /**
   * An agent upgraded while a migration was under way finds a journal of the first format (plain
   * JSON lines); it recovers it exactly as the old agent would have: snapshot metadata back, the
   * migration rolled back, the VM left running here.
   */
  @Test
  void aJournalOfTheFirstFormatIsRecoveredAfterAnUpgrade() throws Exception {
    String host = "srcu" + hostIds.incrementAndGet();
    FakeHypervisor hv = stoppedMidMigration(host);
    Files.writeString(
        root(host).resolve("journal/m-old.source.jsonl"),
        "{\"atMillis\":1,\"event\":\"started\",\"phase\":\"preflight\",\"manifest\":"
            + JSON.writeValueAsString(manifest("m-old", host))
            + ",\"options\":"
            + JSON.writeValueAsString(MigrationOptions.defaults())
            + "}\n"
            + "{\"atMillis\":2,\"event\":\"metadata-dropping\",\"phase\":\"dropping-metadata\"}\n"
            + "{\"atMillis\":3,\"event\":\"phase\",\"phase\":\"bulk-copy\",\"detail\":\"copying\"}\n");
    start(host, hv, new FakeImageTool(images), new ScriptedProcessRunner());
    MigrationResult r = resultOf(host, "m-old");
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertEquals(host, r.runningOn());
    assertTrue(r.message().contains("bulk-copy"), r.message());
    assertEquals(List.of("redefine snap-0"), hv.callsWith("redefine"));
  }

  /**
   * The agent died while writing a record: the torn last record is dropped and the ones before it
   * still drive the recovery (a torn line used to hide every later one; a torn multi-byte character
   * stopped the agent from starting).
   */
  @Test
  void aTornLastRecordDoesNotHideTheOnesBeforeIt() throws Exception {
    String host = "srct" + hostIds.incrementAndGet();
    FakeHypervisor hv = stoppedMidMigration(host);
    FileMigrationJournal journal = new FileMigrationJournal(root(host).resolve("journal"), JSON);
    journal.append(
        "m-torn",
        MigrationJournal.Role.SOURCE,
        new JournalEntry.Started(manifest("m-torn", host), MigrationOptions.defaults()));
    journal.append("m-torn", MigrationJournal.Role.SOURCE, new JournalEntry.MetadataDropping());
    byte[] torn = {'8', '7', ' ', '1', 'a', ' ', '{', '"', 'd', (byte) 0xC3};
    Files.write(root(host).resolve("journal/m-torn.source.jsonl"), torn, StandardOpenOption.APPEND);
    start(host, hv, new FakeImageTool(images), new ScriptedProcessRunner());
    MigrationResult r = resultOf(host, "m-torn");
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertEquals(List.of("redefine snap-0"), hv.callsWith("redefine"));
  }
}
