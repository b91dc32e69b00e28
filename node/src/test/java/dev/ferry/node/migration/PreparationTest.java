package dev.ferry.node.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.JsonEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.protocol.AgentProtocol;
import dev.ferry.protocol.MigrationEvent;
import dev.ferry.protocol.MigrationOutcome;
import dev.ferry.protocol.MigrationResult;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/** Preflight and contact: refusals that change nothing, answers from the journal, logging. */
class PreparationTest extends EngineFixture {

  @Test
  void aDestinationThatAlreadyHasTheDomainRefusesAndNothingChanges() {
    dstHv.addRunning(VM, 131072, List.of(DISK));
    MigrationResult r = run("m-refused", rsyncFinal()).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome());
    assertTrue(r.message().contains("already defined on " + dst), r.message());
    assertEquals(Set.of("snap-0", "snap-1"), srcHv.snapshotNames(VM), "nothing was touched");
    assertTrue(srcHv.callsWith("delete-metadata").isEmpty());
  }

  @Test
  void aFerryBitmapLeftByAnEarlierMigrationIsRemovedAtPreflight() {
    // an earlier migration died before its verification or undo (issue 11)
    srcHv.domains.get(VM).bitmaps.add("ferry-m-earlier");
    MigrationResult r = run("m-leftover", overlay()).result();
    assertEquals(MigrationOutcome.COMPLETED, r.outcome(), r.message());
    // the overlay strategy adds no bitmap of its own: this removal is the leftover's
    assertTrue(srcHv.calls.contains("qmp block-dirty-bitmap-remove"), srcHv.calls.toString());
    assertTrue(
        r.message()
            .contains(DISK + ": dirty bitmap ferry-m-earlier of an earlier migration removed"),
        r.message());
  }

  @Test
  void aVmWithUefiVariablesIsRefusedWithWhatItWouldLose() {
    var d = srcHv.domains.get(VM);
    d.definition =
        new dev.ferry.node.libvirt.DomainDefinition(
            VM,
            d.definition.uuid(),
            "qemu",
            d.definition.memoryKiB(),
            1,
            d.definition.disks(),
            "<domain><name>vm1</name><os><nvram>/var/lib/libvirt/qemu/nvram/vm1_VARS.fd</nvram>"
                + "</os></domain>");
    MigrationResult r = run("m-uefi", overlay()).result();
    assertEquals(MigrationOutcome.ROLLED_BACK, r.outcome(), r.message());
    assertTrue(
        r.message()
            .contains("keeps UEFI variables (NVRAM /var/lib/libvirt/qemu/nvram/vm1_VARS.fd)"),
        r.message());
    assertTrue(srcHv.callsWith("delete-metadata").isEmpty(), "nothing was touched");
  }

  @Test
  void aRetryOfAFinishedMigrationAnswersFromTheJournal() {
    MigrationResult first = run("m-again", rsyncFinal()).result();
    assertEquals(MigrationOutcome.COMPLETED, first.outcome());
    MigrationResult again = run("m-again", rsyncFinal()).result();
    assertEquals(first, again, "the same result, and no second migration");
    assertEquals(1, cloud.host(src).callsWith("migrate").size());
  }

  @Test
  void badInputIsRejectedBeforeAnythingRuns() {
    TestProbe<MigrationEvent> events = testKit.createTestProbe();
    agent(src)
        .tell(
            new AgentProtocol.StartMigration(
                "m-bad", "vm1;reboot", dst, rsyncFinal(), events.getRef()));
    MigrationEvent e = events.receiveMessage();
    assertTrue(
        e instanceof MigrationEvent.Rejected r && r.reason().startsWith("vm:"), e.toString());
    agent(src)
        .tell(new AgentProtocol.StartMigration("m-self", VM, src, rsyncFinal(), events.getRef()));
    MigrationEvent self = events.receiveMessage();
    assertTrue(
        self instanceof MigrationEvent.Rejected r && r.reason().contains("already runs on"),
        self.toString());
    assertTrue(srcHv.calls.isEmpty(), "nothing reached the hypervisor: " + srcHv.calls);
  }

  /**
   * Every line the source's and the destination's migration actors log carries the migration id and
   * the VM, and the JSON encoder of logback-json.xml writes them as fields.
   */
  @Test
  void everyLogLineOfAMigrationCarriesItsIdAndVm() throws Exception {
    Logger migrationLog = (Logger) LoggerFactory.getLogger("dev.ferry.migration");
    ListAppender<ILoggingEvent> lines = new ListAppender<>();
    lines.start();
    Level before = migrationLog.getLevel();
    migrationLog.setLevel(Level.INFO);
    migrationLog.addAppender(lines);
    try {
      assertEquals(MigrationOutcome.COMPLETED, run("m-logs", rsyncFinal()).result().outcome());
    } finally {
      migrationLog.detachAppender(lines);
      migrationLog.setLevel(before);
    }
    List<ILoggingEvent> events = List.copyOf(lines.list);
    assertTrue(
        events.stream().anyMatch(e -> e.getLoggerName().equals("dev.ferry.migration.destination")),
        "the destination logged too");
    for (ILoggingEvent e : events) {
      assertEquals("m-logs", e.getMDCPropertyMap().get("migrationId"), e.getFormattedMessage());
      assertEquals(VM, e.getMDCPropertyMap().get("vm"), e.getFormattedMessage());
    }
    JsonEncoder json = new JsonEncoder();
    json.setContext((LoggerContext) LoggerFactory.getILoggerFactory());
    json.start();
    JsonNode line =
        new ObjectMapper().readTree(new String(json.encode(events.get(0)), StandardCharsets.UTF_8));
    assertEquals("m-logs", line.path("mdc").path("migrationId").asText(), line.toString());
    assertEquals(VM, line.path("mdc").path("vm").asText(), line.toString());
  }
}
