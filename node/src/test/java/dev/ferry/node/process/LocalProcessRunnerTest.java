package dev.ferry.node.process;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/** Real processes: exit codes, timeouts, process trees, stderr floods, line splitting. */
class LocalProcessRunnerTest {
  private static final LocalProcessRunner runner = new LocalProcessRunner();

  @AfterAll
  static void close() {
    runner.close();
  }

  @Test
  void acceptsOnlyTheConfiguredExitCodes() {
    ProcessResult ok = runner.run(ProcessSpec.of("true"), l -> {});
    assertTrue(ok.accepted());
    assertEquals(0, ok.exitCode());

    ProcessResult three = runner.run(ProcessSpec.of("sh", "-c", "echo boom >&2; exit 3"), l -> {});
    assertFalse(three.accepted());
    assertEquals(3, three.exitCode());
    assertEquals("sh exited 3: boom", three.describe());
    ProcessFailedException e = assertThrows(ProcessFailedException.class, three::orThrow);
    assertEquals(3, e.result().exitCode());

    ProcessResult accepted =
        runner.run(ProcessSpec.of("sh", "-c", "exit 3").withAcceptedExitCodes(0, 3), l -> {});
    assertTrue(accepted.accepted());
  }

  @Test
  void timeoutKillsTheWholeTree() throws Exception {
    List<String> lines = new CopyOnWriteArrayList<>();
    // the child sleeps in the background; only killing the tree ends it
    ProcessResult r =
        runner.run(
            ProcessSpec.of("sh", "-c", "sleep 600 & echo $!; sleep 600")
                .withTimeout(Duration.ofMillis(800))
                .withKillGrace(Duration.ofMillis(200)),
            lines::add);
    assertTrue(r.timedOut());
    assertFalse(r.accepted());
    long child = Long.parseLong(lines.get(0).trim());
    assertTrue(waitDead(child), "background child " + child + " survived the timeout");
  }

  @Test
  void processesThatIgnoreSigtermAreKilled() throws Exception {
    List<String> lines = new CopyOnWriteArrayList<>();
    ProcessResult r =
        runner.run(
            ProcessSpec.of("sh", "-c", "trap '' TERM; sleep 600 & echo $!; wait")
                .withTimeout(Duration.ofMillis(500))
                .withKillGrace(Duration.ofMillis(300)),
            lines::add);
    assertTrue(r.timedOut());
    assertTrue(waitDead(Long.parseLong(lines.get(0).trim())));
  }

  @Test
  void stderrFloodIsBoundedAndDoesNotBlockTheProcess() {
    List<String> out = new ArrayList<>();
    ProcessResult r =
        runner.run(
            ProcessSpec.of("sh", "-c", "yes 'an error line' | head -n 1500000 >&2; echo done")
                .withStderrTailBytes(4096),
            out::add);
    assertTrue(r.accepted(), r.describe());
    assertEquals(List.of("done"), out);
    assertTrue(r.stderrTail().length() <= 4096 + "[...]".length(), "tail is bounded");
    assertTrue(r.stderrTail().startsWith("[...]"), "tail says it was cut");
    assertTrue(r.stderrTail().endsWith("an error line\n"));
  }

  @Test
  void stdoutIsSplitOnNewlinesAndCarriageReturns() {
    List<String> out = new ArrayList<>();
    runner.run(ProcessSpec.of("printf", "10%%\\r20%%\\r100%%\\ndone\\nlast"), out::add).orThrow();
    assertEquals(List.of("10%", "20%", "100%", "done", "last"), out);
  }

  @Test
  void secretsAreRedactedFromArgvAndStderr() {
    ProcessResult r =
        runner.run(
            ProcessSpec.of("sh", "-c", "echo token=s3cr3t >&2; exit 1", "s3cr3t")
                .withSecret("s3cr3t"),
            l -> {});
    assertFalse(r.argv().stream().anyMatch(a -> a.contains("s3cr3t")), r.argv().toString());
    assertFalse(r.stderrTail().contains("s3cr3t"));
    assertTrue(r.stderrTail().contains("token=***"));
  }

  @Test
  void argvIsNeverInterpretedByAShell() {
    List<String> out = new ArrayList<>();
    runner
        .run(ProcessSpec.of("echo", "$(id)", ";", "rm", "-rf", "/nonexistent"), out::add)
        .orThrow();
    assertEquals(List.of("$(id) ; rm -rf /nonexistent"), out);
  }

  @Test
  void startStreamsBytesThroughTheProcess() throws Exception {
    RunningProcess cat = runner.start(ProcessSpec.of("cat"));
    byte[] data = new byte[3 * 1024 * 1024];
    new Random(7).nextBytes(data);
    CompletableFuture<byte[]> read =
        CompletableFuture.supplyAsync(
            () -> {
              try (InputStream in = cat.stdout()) {
                return in.readAllBytes();
              } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            });
    try (OutputStream in = cat.stdin()) {
      new ByteArrayInputStream(data).transferTo(in);
    }
    assertArrayEquals(data, read.get(30, TimeUnit.SECONDS));
    ProcessResult r = cat.onExit().toCompletableFuture().get(30, TimeUnit.SECONDS);
    assertTrue(r.accepted());
  }

  @Test
  void killEndsAStartedProcess() throws Exception {
    RunningProcess sleeper = runner.start(ProcessSpec.of("sleep", "600"));
    sleeper.kill();
    ProcessResult r = sleeper.onExit().toCompletableFuture().get(30, TimeUnit.SECONDS);
    assertFalse(r.accepted());
    assertFalse(ProcessHandle.of(sleeper.pid()).map(ProcessHandle::isAlive).orElse(false));
  }

  @Test
  void readLinesKeepsAFinalLineWithoutNewline() throws Exception {
    List<String> out = new ArrayList<>();
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.write("a\r\n\nb".getBytes(StandardCharsets.UTF_8));
    LocalProcessRunner.readLines(new ByteArrayInputStream(b.toByteArray()), out::add);
    assertEquals(List.of("a", "b"), out);
  }

  @Test
  void specRejectsNulAndEmptyArgv() {
    assertThrows(IllegalArgumentException.class, () -> ProcessSpec.of(List.of()));
    assertThrows(IllegalArgumentException.class, () -> ProcessSpec.of("echo", "a\0b"));
  }

  private static boolean waitDead(long pid) throws InterruptedException {
    for (int i = 0; i < 100; i++) {
      if (ProcessHandle.of(pid).map(p -> !p.isAlive()).orElse(true)) {
        return true;
      }
      TimeUnit.MILLISECONDS.sleep(50);
    }
    return false;
  }
}
