package dev.ferry.node.migration.overlay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.ferry.node.fakes.FakeCloud;
import dev.ferry.node.fakes.FakeHypervisor;
import dev.ferry.node.fakes.FakeImageTool;
import dev.ferry.node.host.HostFiles;
import dev.ferry.node.host.OpenFiles;
import dev.ferry.node.journal.FileMigrationJournal;
import dev.ferry.node.migration.HostPorts;
import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.node.settings.NodeSettings;
import dev.ferry.node.validation.DatastorePaths;
import dev.ferry.protocol.DestinationProtocol.OverlaySpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ManualTime;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The merge of a running VM's overlays on fakes and manual time: commit, wait until caught up,
 * pivot, check both definitions, remove the overlay; a commit that ends without a pivot is aborted
 * and retried (the chain is consistent at every point), and after the configured attempts the merge
 * reports its failure with the VM still running on its two-file chain.
 */
class OverlayMergeActorTest {
  private static final Config CONFIG =
      ManualTime.config()
          .withFallback(
              ConfigFactory.parseString("pekko.actor.provider = local\npekko.loglevel = WARNING"))
          .withFallback(ConfigFactory.load());
  private static final ActorTestKit kit = ActorTestKit.create(CONFIG);
  private static final ManualTime time = ManualTime.get(kit.system());
  private static final String VM = "vm1";
  private static final String BASE = "/ds0/vm1/disk.0";
  private static final String OVERLAY = "/ds0/vm1/.ferry-overlay-m1-vda.qcow2";

  @TempDir Path tmp;
  private ExecutorService blocking;
  private FakeHypervisor hv;
  private HostPorts ports;

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  @BeforeEach
  void host() throws Exception {
    blocking = Executors.newCachedThreadPool();
    hv = new FakeCloud().host("h1");
    hv.addRunning(VM, 131072, List.of(OVERLAY));
    Files.createDirectories(tmp.resolve("ds0/vm1"));
    Files.writeString(tmp.resolve("ds0/vm1/.ferry-overlay-m1-vda.qcow2"), "overlay");
    NodeSettings settings =
        NodeSettings.from(
            ConfigFactory.parseString(
                    "ferry.node { host = h1, datastores = [\"/ds0\"], qemu-run-dir = \""
                        + tmp
                        + "\" }")
                .withFallback(CONFIG));
    ports =
        new HostPorts(
            hv,
            new FakeImageTool(new ConcurrentHashMap<>()),
            new ScriptedProcessRunner(),
            new DatastorePaths(List.of(Path.of("/ds0"))),
            new OpenFiles(tmp),
            new FileMigrationJournal(
                tmp.resolve("journal"), new ObjectMapper().findAndRegisterModules()),
            settings,
            blocking,
            new HostFiles(tmp),
            dev.ferry.node.libvirt.PeerHypervisors.NONE);
  }

  @AfterEach
  void close() {
    blocking.shutdownNow();
  }

  private OverlayMergeActor.Result merge() {
    TestProbe<OverlayMergeActor.Result> probe = kit.createTestProbe();
    kit.spawn(
        OverlayMergeActor.create(
            VM,
            List.of(new OverlaySpec("vda", OVERLAY, BASE, "qcow2", 1L << 30, false)),
            0,
            ports,
            probe.getRef()));
    for (int i = 0; i < 300; i++) {
      try {
        return probe.receiveMessage(Duration.ofMillis(50));
      } catch (AssertionError nothingYet) {
        time.timePasses(Duration.ofMillis(100));
      }
    }
    throw new AssertionError("the merge reported nothing");
  }

  private String diskSource() {
    return hv.definition(VM, false).disks().get(0).sourceFile().orElse("");
  }

  @Test
  void commitsPivotsAndRemovesTheOverlay() {
    OverlayMergeActor.Result r = merge();
    assertTrue(r instanceof OverlayMergeActor.Merged, r.toString());
    assertEquals(List.of("commit vda"), hv.callsWith("commit"));
    assertEquals(List.of("pivot vda"), hv.callsWith("pivot"));
    assertEquals(BASE, diskSource());
    assertTrue(Files.notExists(tmp.resolve("ds0/vm1/.ferry-overlay-m1-vda.qcow2")));
  }

  @Test
  void aCommitThatEndsWithoutAPivotIsRetried() {
    hv.commitsThatVanish = 2;
    OverlayMergeActor.Result r = merge();
    assertTrue(r instanceof OverlayMergeActor.Merged, r.toString());
    assertEquals(3, hv.callsWith("commit").size(), hv.calls.toString());
    assertEquals(BASE, diskSource());
  }

  @Test
  void afterTheLastAttemptTheVmStaysOnItsChainAndTheFailureIsReported() {
    hv.commitsThatVanish = 99;
    OverlayMergeActor.Result r = merge();
    assertTrue(r instanceof OverlayMergeActor.Failed, r.toString());
    assertTrue(
        ((OverlayMergeActor.Failed) r).reason().contains("ended without a pivot"), r.toString());
    assertEquals(3, hv.callsWith("commit").size(), "merge-attempts = 3 in reference.conf");
    assertEquals(List.of(), hv.callsWith("pivot"));
    assertEquals(OVERLAY, diskSource(), "still on its consistent two-file chain");
    assertTrue(Files.exists(tmp.resolve("ds0/vm1/.ferry-overlay-m1-vda.qcow2")));
  }
}
