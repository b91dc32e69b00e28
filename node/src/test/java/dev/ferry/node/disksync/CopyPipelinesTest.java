package dev.ferry.node.disksync;

import static dev.ferry.node.process.ScriptedProcessRunner.argvContains;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.ferry.node.process.ScriptedProcessRunner;
import dev.ferry.node.process.ScriptedProcessRunner.Reply;
import dev.ferry.node.settings.NodeSettings;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.stream.Materializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The copies' argv and accounting on a scripted runner: a bulk copy is a sparse archive copy, a
 * final sync and a warm pass update the file in place (never a new inode), the bandwidth share
 * becomes {@code --bwlimit}, progress follows rsync's own lines and the result is what rsync says
 * it sent.
 */
class CopyPipelinesTest {
  private static final ActorTestKit kit =
      ActorTestKit.create(ConfigFactory.parseString("pekko.actor.provider = local"));
  private static final ExecutorService blocking = Executors.newCachedThreadPool();
  private static final NodeSettings SETTINGS =
      NodeSettings.from(
          ConfigFactory.parseString(
                  "ferry.node { host = h1, datastores = [\"/ds0\"], qemu-run-dir = \"/tmp\" }")
              .withFallback(ConfigFactory.load()));

  @AfterAll
  static void stop() {
    blocking.shutdownNow();
    kit.shutdownTestKit();
  }

  private static CopyPipelines pipelines(ScriptedProcessRunner runner) {
    return new CopyPipelines(
        runner, SETTINGS, Materializer.createMaterializer(kit.system()), blocking);
  }

  @Test
  void aBulkCopyIsSparseAndCountsWhatRsyncSent() throws Exception {
    ScriptedProcessRunner runner =
        new ScriptedProcessRunner()
            .on(
                argvContains("rsync"),
                Reply.ok(
                    "    524,288  50%  1.00MB/s",
                    "  1,048,576 100%  1.00MB/s", "Total bytes sent: 17,408"));
    AtomicLong counter = new AtomicLong();
    long sent =
        pipelines(runner)
            .rsync(
                Path.of("/ds0/vm1/disk.0"),
                "h2",
                CopyPipelines.RsyncMode.SPARSE_COPY,
                2L << 20,
                1L << 20,
                counter)
            .done
            .toCompletableFuture()
            .get(10, TimeUnit.SECONDS);
    List<String> argv = runner.invocations().get(0);
    assertTrue(argv.containsAll(List.of("--archive", "--sparse")), argv.toString());
    assertFalse(argv.contains("--inplace"), argv.toString());
    assertTrue(argv.contains("--bwlimit=2048"), argv.toString());
    assertEquals("h2:/ds0/vm1/disk.0", argv.get(argv.size() - 1));
    assertEquals(1L << 20, counter.get(), "progress from rsync's own lines");
    assertEquals(17_408, sent, "what rsync sent, not the file's size");
  }

  @Test
  void aFinalSyncUpdatesTheFileInPlace() throws Exception {
    ScriptedProcessRunner runner =
        new ScriptedProcessRunner().on(argvContains("rsync"), Reply.ok());
    pipelines(runner)
        .rsync(
            Path.of("/ds0/vm1/disk.0"),
            "h2",
            CopyPipelines.RsyncMode.IN_PLACE,
            0,
            1L << 20,
            new AtomicLong())
        .done
        .toCompletableFuture()
        .get(10, TimeUnit.SECONDS);
    List<String> argv = runner.invocations().get(0);
    assertTrue(
        argv.containsAll(List.of("--inplace", "--no-whole-file", "--ignore-times")),
        argv.toString());
    assertFalse(argv.contains("--sparse"), "a sparse copy would write a new file: " + argv);
    assertFalse(argv.stream().anyMatch(a -> a.startsWith("--bwlimit")), argv.toString());
  }

  @Test
  void aFailedRsyncFailsTheCopy() {
    ScriptedProcessRunner runner =
        new ScriptedProcessRunner().on(argvContains("rsync"), Reply.fail(23, "rsync error"));
    var done =
        pipelines(runner)
            .rsync(
                Path.of("/ds0/vm1/disk.0"),
                "h2",
                CopyPipelines.RsyncMode.IN_PLACE,
                0,
                1L << 20,
                new AtomicLong())
            .done
            .toCompletableFuture();
    Exception e =
        org.junit.jupiter.api.Assertions.assertThrows(
            Exception.class, () -> done.get(10, TimeUnit.SECONDS));
    assertTrue(e.getCause() instanceof dev.ferry.node.process.ProcessFailedException, e.toString());
  }
}
