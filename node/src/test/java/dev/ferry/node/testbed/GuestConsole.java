package dev.ferry.node.testbed;

import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the test guest reports on its serial console (see testbed/guest/init.sh): its record
 * counter, verification failures, the cold-boot check and the last record at shutdown.
 */
public record GuestConsole(String host, String vm, Path log) {
  private static final Pattern SEQ = Pattern.compile("^TBSEQ (\\d+) ", Pattern.MULTILINE);
  private static final Pattern SHUTDOWN =
      Pattern.compile("^TBSHUTDOWN last=(\\d+)", Pattern.MULTILINE);
  private static final Pattern BOOT =
      Pattern.compile(
          "^TBBOOT disk=(\\w+) last_on_disk=(\\d+) checked=(\\d+) ok=(\\d+) bad=(\\d+)",
          Pattern.MULTILINE);

  /** One disk's cold-boot check. */
  public record BootCheck(String disk, long lastOnDisk, int checked, int ok, int bad) {}

  public String text() {
    try {
      return Files.exists(log) ? Files.readString(log, StandardCharsets.ISO_8859_1) : "";
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The last progress counter the guest logged (it logs every 10 records). */
  public long lastProgress() {
    Matcher m = SEQ.matcher(text());
    long last = 0;
    while (m.find()) {
      last = Long.parseLong(m.group(1));
    }
    return last;
  }

  /** Waits until the guest has logged progress beyond what it had logged before the call. */
  public long awaitProgress(Duration timeout) {
    long before = lastProgress();
    await()
        .atMost(timeout)
        .pollInterval(Duration.ofMillis(200))
        .until(() -> lastProgress() > before);
    return lastProgress();
  }

  /** How much the guest has logged so far: an offset for {@link #awaitProgressAfter}. */
  public int length() {
    return text().length();
  }

  /**
   * Waits until the guest logs progress after {@code offset}, whatever its counter: after a revert
   * the counter goes back to the snapshot's, below what was logged before.
   */
  public long awaitProgressAfter(int offset, Duration timeout) {
    await()
        .atMost(timeout)
        .pollInterval(Duration.ofMillis(200))
        .until(() -> SEQ.matcher(text()).find(Math.min(offset, text().length())));
    String t = text();
    Matcher m = SEQ.matcher(t);
    m.find(Math.min(offset, t.length()));
    return Long.parseLong(m.group(1));
  }

  public long verifyFailures() {
    return text().lines().filter(l -> l.startsWith("TBVERIFYFAIL")).count();
  }

  public OptionalLong lastShutdownRecord() {
    Matcher m = SHUTDOWN.matcher(text());
    OptionalLong last = OptionalLong.empty();
    while (m.find()) {
      last = OptionalLong.of(Long.parseLong(m.group(1)));
    }
    return last;
  }

  /**
   * Waits for a TBSHUTDOWN line with a record above {@code before}. virtlogd copies the console to
   * the log file on its own schedule, so the domain can be "shut off" a moment before the guest's
   * last line reaches the file.
   */
  public long awaitShutdownRecord(long before, Duration timeout) {
    await()
        .atMost(timeout)
        .pollInterval(Duration.ofMillis(200))
        .alias("a TBSHUTDOWN line above " + before + " in " + log)
        .until(() -> lastShutdownRecord().orElse(-1) > before);
    return lastShutdownRecord().orElseThrow();
  }

  /** Every TBBOOT line of the last boot that reported any. */
  public List<BootCheck> lastBootChecks() {
    String text = text();
    int lastReady = text.lastIndexOf("TBREADY");
    int prevReady = lastReady <= 0 ? -1 : text.lastIndexOf("TBREADY", lastReady - 1);
    String window =
        text.substring(Math.max(0, prevReady + 1), lastReady < 0 ? text.length() : lastReady);
    Matcher m = BOOT.matcher(window);
    List<BootCheck> out = new ArrayList<>();
    while (m.find()) {
      out.add(
          new BootCheck(
              m.group(1),
              Long.parseLong(m.group(2)),
              Integer.parseInt(m.group(3)),
              Integer.parseInt(m.group(4)),
              Integer.parseInt(m.group(5))));
    }
    return out;
  }

  public int readyCount() {
    return (int) text().lines().filter(l -> l.startsWith("TBREADY")).count();
  }
}
