package dev.ferry.node.disksync;

import static dev.ferry.node.process.ScriptedProcessRunner.argvContains;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.node.process.ScriptedProcessRunner.Reply;
import dev.ferry.node.settings.NodeSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ManualTime;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * One disk's copies on a scripted process runner and manual time: the bulk copy and the warm passes
 * report what they moved, a final sync is always in place, after a failed delta it is rsync, and a
 * failed copy is reported with its step instead of being retried here (the migration decides).
 */
class DiskSyncActorTest {
  private static final Config CONFIG =
      ManualTime.config()
          .withFallback(
              ConfigFactory.parseString("pekko.actor.provider = local\npekko.loglevel = WARNING"))
          .withFallback(ConfigFactory.load());
  private static final ActorTestKit kit = ActorTestKit.create(CONFIG);
  private static final NodeSettings SETTINGS =
      NodeSettings.from(
          ConfigFactory.parseString(
                  "ferry.node { host = h1, datastores = [\"/ds0\"], qemu-run-dir = \"/tmp\" }")
              .withFallback(CONFIG));
  private final ExecutorService blocking = Executors.newCachedThreadPool();

  @AfterAll
  static void stop() {
    kit.shutdownTestKit();
  }

  @AfterEach
  void close() {
    blocking.shutdownNow();
  }

  private static DiskJob job(Optional<String> bitmap, int warmPasses) {
    return new DiskJob(
        "vda", Path.of("/ds0/vm1/disk.0"), "h2", 1L << 20, bitmap, true, warmPasses, 0);
  }

  private ActorRef<DiskSyncActor.Command> disk(
      DiskJob job, ScriptedProcessRunner runner, TestProbe<DiskSyncActor.Event> events) {
    return kit.spawn(DiskSyncActor.create(job, events.getRef(), runner, SETTINGS, blocking));
  }

  /** The next event that is not progress. */
  private static DiskSyncActor.Event next(TestProbe<DiskSyncActor.Event> events) {
    DiskSyncActor.Event e;
    do {
      e = events.receiveMessage(Duration.ofSeconds(10));
    } while (e instanceof DiskSyncActor.Progress);
    return e;
  }

  @Test
  void bulkCopyThenWarmPassesThenAnInPlaceFinalSync() {
    ScriptedProcessRunner runner =
        new ScriptedProcessRunner().on(argvContains("rsync"), Reply.ok());
    TestProbe<DiskSyncActor.Event> events = kit.createTestProbe();
    ActorRef<DiskSyncActor.Command> disk = disk(job(Optional.empty(), 2), runner, events);

    disk.tell(new DiskSyncActor.BulkCopy());
    DiskSyncActor.Event copied = next(events);
    assertTrue(copied instanceof DiskSyncActor.BulkCopied, copied.toString());
    assertEquals("rsync-warm", ((DiskSyncActor.BulkCopied) copied).method());
    // one sparse bulk copy, then the two warm passes in place
    List<List<String>> rsyncs = runner.invocations();
    assertEquals(3, rsyncs.size(), rsyncs.toString());
    assertTrue(rsyncs.get(1).contains("--inplace") && rsyncs.get(2).contains("--inplace"));

    disk.tell(new DiskSyncActor.FinalSync(false));
    DiskSyncActor.Event done = next(events);
    assertTrue(done instanceof DiskSyncActor.FinalSyncDone, done.toString());
    assertEquals("rsync-inplace", ((DiskSyncActor.FinalSyncDone) done).method());
    assertTrue(runner.invocations().get(3).contains("--inplace"), "never a new inode");
    assertEquals(Optional.empty(), ((DiskSyncActor.FinalSyncDone) done).bitmapLeft());
  }

  @Test
  void aFinalSyncAfterAFailedDeltaIsRsyncAndSaysSo() {
    ScriptedProcessRunner runner =
        new ScriptedProcessRunner().on(argvContains("rsync"), Reply.ok());
    TestProbe<DiskSyncActor.Event> events = kit.createTestProbe();
    ActorRef<DiskSyncActor.Command> disk = disk(job(Optional.of("ferry-m1"), 0), runner, events);
    disk.tell(new DiskSyncActor.BulkCopy());
    assertTrue(next(events) instanceof DiskSyncActor.BulkCopied);

    disk.tell(new DiskSyncActor.FinalSync(true));
    DiskSyncActor.Event done = next(events);
    assertTrue(done instanceof DiskSyncActor.FinalSyncDone, done.toString());
    assertEquals(
        "rsync-inplace (after a failed delta)", ((DiskSyncActor.FinalSyncDone) done).method());
    assertEquals(Optional.empty(), ((DiskSyncActor.FinalSyncDone) done).bitmapLeft());
  }

  @Test
  void aFailedCopyIsReportedWithItsStep() {
    ScriptedProcessRunner runner =
        new ScriptedProcessRunner()
            .on(
                argvContains("rsync"),
                Reply.fail(12, "rsync: write failed: No space left on device"));
    TestProbe<DiskSyncActor.Event> events = kit.createTestProbe();
    ActorRef<DiskSyncActor.Command> disk = disk(job(Optional.empty(), 0), runner, events);
    disk.tell(new DiskSyncActor.BulkCopy());
    DiskSyncActor.Event e = next(events);
    assertTrue(e instanceof DiskSyncActor.Failed, e.toString());
    DiskSyncActor.Failed f = (DiskSyncActor.Failed) e;
    assertEquals("bulk copy", f.step());
    assertTrue(f.reason().contains("No space left on device"), f.reason());
    assertEquals(1, runner.invocations().size(), "not retried here: the migration decides");
  }
}
