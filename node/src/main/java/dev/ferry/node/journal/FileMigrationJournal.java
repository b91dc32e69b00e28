package dev.ferry.node.journal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link MigrationJournal} as one file per migration and role, {@code <dir>/<id>.<role>.jsonl}, one
 * record per line: {@code <length> <crc32c> <json>}, where the length counts the JSON's bytes and
 * the checksum covers them. Every append is fsynced; a new file's directory is fsynced too, so the
 * file itself survives a power loss.
 *
 * <p>Reading trusts only records whose length and checksum match. A torn last record (the agent
 * died mid-write) is dropped; a damaged record elsewhere is skipped; both are reported in the log,
 * and the records after a damaged one are still read. Lines in the first format (plain JSON
 * objects, before records were framed) are read and converted.
 */
public final class FileMigrationJournal implements MigrationJournal {
  private static final Logger log = LoggerFactory.getLogger(FileMigrationJournal.class);
  private static final String SUFFIX = ".jsonl";
  private final Path dir;
  private final ObjectMapper json;

  public FileMigrationJournal(Path dir, ObjectMapper json) {
    this.dir = dir;
    this.json = json;
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new JournalException("cannot create the journal directory " + dir, e);
    }
  }

  private Path file(String migrationId, Role role) {
    return dir.resolve(migrationId + "." + role.name().toLowerCase(Locale.ROOT) + SUFFIX);
  }

  @Override
  public synchronized void append(String migrationId, Role role, JournalEntry entry) {
    Path f = file(migrationId, role);
    boolean created = !Files.exists(f);
    try (FileChannel ch =
        FileChannel.open(
            f, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      byte[] record = frame(json.writeValueAsBytes(entry));
      if (endsTorn(ch)) {
        // the agent died mid-record: end that line, or this record would be glued to it and lost
        byte[] withNewline = new byte[record.length + 1];
        withNewline[0] = '\n';
        System.arraycopy(record, 0, withNewline, 1, record.length);
        record = withNewline;
      }
      // one writer per file (this method is synchronized): appending is writing at the end
      ch.position(ch.size());
      ByteBuffer b = ByteBuffer.wrap(record);
      while (b.hasRemaining()) {
        ch.write(b);
      }
      ch.force(true);
    } catch (IOException | RuntimeException e) {
      throw new JournalException(
          "cannot append to the journal of " + migrationId + " in " + dir + ": " + e.getMessage(),
          e);
    }
    if (created) {
      syncDirectory();
    }
  }

  /** Whether the file's last byte is not a newline: the last record was never finished. */
  private static boolean endsTorn(FileChannel ch) throws IOException {
    long size = ch.size();
    if (size == 0) {
      return false;
    }
    ByteBuffer last = ByteBuffer.allocate(1);
    ch.read(last, size - 1);
    return last.get(0) != '\n';
  }

  /** {@code <length> <crc32c> <json>\n}. */
  static byte[] frame(byte[] body) {
    CRC32C crc = new CRC32C();
    crc.update(body);
    byte[] head =
        (body.length + " " + Long.toHexString(crc.getValue()) + " ")
            .getBytes(StandardCharsets.US_ASCII);
    byte[] out = new byte[head.length + body.length + 1];
    System.arraycopy(head, 0, out, 0, head.length);
    System.arraycopy(body, 0, out, head.length, body.length);
    out[out.length - 1] = '\n';
    return out;
  }

  private void syncDirectory() {
    try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
      d.force(true);
    } catch (IOException e) {
      throw new JournalException("cannot sync the journal directory " + dir, e);
    }
  }

  @Override
  public synchronized List<JournalEntry> read(String migrationId, Role role) {
    Path f = file(migrationId, role);
    if (!Files.exists(f)) {
      return List.of();
    }
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(f);
    } catch (IOException e) {
      throw new JournalException("cannot read the journal of " + migrationId, e);
    }
    List<JournalEntry> out = new ArrayList<>();
    int start = 0;
    int lineNo = 0;
    while (start < bytes.length) {
      int end = start;
      while (end < bytes.length && bytes[end] != '\n') {
        end++;
      }
      lineNo++;
      boolean last = end >= bytes.length;
      byte[] line = java.util.Arrays.copyOfRange(bytes, start, end);
      start = end + 1;
      if (line.length == 0) {
        continue;
      }
      Optional<JournalEntry> e = parse(line, role);
      if (e.isPresent()) {
        out.add(e.get());
      } else if (last) {
        log.warn(
            "journal {}: the last record (line {}) is torn (the agent stopped while writing it);"
                + " it is ignored",
            f,
            lineNo);
      } else {
        log.error(
            "journal {}: record at line {} is damaged (length or checksum); it is skipped and the"
                + " records after it are read",
            f,
            lineNo);
      }
    }
    return out;
  }

  /** A framed record, or a line of the first format; empty if it does not check out. */
  private Optional<JournalEntry> parse(byte[] line, Role role) {
    if (line[0] == '{') {
      return legacy(line, role);
    }
    int sp1 = indexOf(line, (byte) ' ', 0);
    int sp2 = sp1 < 0 ? -1 : indexOf(line, (byte) ' ', sp1 + 1);
    if (sp2 < 0) {
      return Optional.empty();
    }
    try {
      int length = Integer.parseInt(new String(line, 0, sp1, StandardCharsets.US_ASCII));
      long sum =
          Long.parseLong(new String(line, sp1 + 1, sp2 - sp1 - 1, StandardCharsets.US_ASCII), 16);
      int bodyStart = sp2 + 1;
      if (line.length - bodyStart != length) {
        return Optional.empty();
      }
      CRC32C crc = new CRC32C();
      crc.update(line, bodyStart, length);
      if (crc.getValue() != sum) {
        return Optional.empty();
      }
      return Optional.of(json.readValue(line, bodyStart, length, JournalEntry.class));
    } catch (IOException | NumberFormatException e) {
      return Optional.empty();
    }
  }

  private static int indexOf(byte[] b, byte c, int from) {
    for (int i = from; i < b.length; i++) {
      if (b[i] == c) {
        return i;
      }
    }
    return -1;
  }

  /**
   * A line of the first journal format: a plain JSON object with an {@code event} name. Converted
   * to the record it meant, so journals written before the upgrade are recovered the same way.
   */
  private Optional<JournalEntry> legacy(byte[] line, Role role) {
    JsonNode n;
    try {
      String text =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .decode(ByteBuffer.wrap(line))
              .toString();
      n = json.readTree(text);
    } catch (CharacterCodingException e) {
      return Optional.empty();
    } catch (IOException e) {
      return Optional.empty();
    }
    long at = n.path("atMillis").asLong();
    String event = n.path("event").asText("");
    String detail = n.hasNonNull("detail") ? n.get("detail").asText() : null;
    JsonNode facts = n.path("facts");
    try {
      JournalEntry e =
          switch (event) {
            case "started" ->
                new JournalEntry.Started(
                    at,
                    json.treeToValue(n.get("manifest"), Manifest.class),
                    n.hasNonNull("options")
                        ? json.treeToValue(n.get("options"), MigrationOptions.class)
                        : null);
            case "phase" ->
                new JournalEntry.PhaseEntered(
                    at, json.convertValue(n.path("phase").asText(), MigrationPhase.class), detail);
            case "target-ready" ->
                new JournalEntry.TargetReady(
                    at, facts.path("target").asText(), facts.path("host").asText());
            case "bitmaps-added" ->
                new JournalEntry.BitmapsAdded(at, facts.path("bitmap").asText());
            case "metadata-dropping" -> new JournalEntry.MetadataDropping(at);
            case "copied" -> new JournalEntry.Copied(at, detail);
            case "cold-shutdown" -> new JournalEntry.ColdShutdown(at);
            case "shut-off" -> new JournalEntry.ShutOff(at);
            case "cold-start-requested" -> new JournalEntry.ColdStartRequested(at);
            case "cold-started" -> new JournalEntry.ColdStarted(at);
            case "memory-started" -> new JournalEntry.MemoryStarted(at);
            case "switched-over" -> new JournalEntry.SwitchedOver(at, detail);
            case "final-synced" -> new JournalEntry.FinalSynced(at, detail);
            case "acknowledged" -> new JournalEntry.Acknowledged(at);
            case "rolling-back" -> new JournalEntry.RollingBack(at, detail);
            case "overlays-created" ->
                role == Role.SOURCE
                    ? new JournalEntry.OverlaysCreated(at)
                    : new JournalEntry.IncomingStep(
                        at, JournalEntry.Incoming.OVERLAYS_CREATED, detail);
            case "migrating-back" ->
                role == Role.SOURCE
                    ? new JournalEntry.MigratingBack(at, detail)
                    : new JournalEntry.IncomingStep(
                        at, JournalEntry.Incoming.MIGRATING_BACK, detail);
            case "finished" ->
                role == Role.SOURCE
                    ? new JournalEntry.Finished(
                        at, json.treeToValue(n.get("result"), MigrationResult.class))
                    : new JournalEntry.IncomingEnded(
                        at,
                        JournalEntry.IncomingEnd.valueOf(
                            n.path("phase").asText().toUpperCase(Locale.ROOT).replace('-', '_')),
                        detail);
            default ->
                new JournalEntry.IncomingStep(
                    at,
                    JournalEntry.Incoming.valueOf(event.toUpperCase(Locale.ROOT).replace('-', '_')),
                    detail);
          };
      return Optional.of(e);
    } catch (IOException | IllegalArgumentException | NullPointerException e) {
      log.warn(
          "journal: a record of the first format ({}) could not be converted: {}",
          event,
          e.getMessage());
      return Optional.empty();
    }
  }

  @Override
  public List<String> unfinished(Role role) {
    return all(role).stream()
        .filter(id -> read(id, role).stream().noneMatch(JournalEntry::terminal))
        .toList();
  }

  @Override
  public List<String> all(Role role) {
    String suffix = "." + role.name().toLowerCase(Locale.ROOT) + SUFFIX;
    try (Stream<Path> files = Files.list(dir)) {
      return files
          .map(p -> p.getFileName().toString())
          .filter(n -> n.endsWith(suffix))
          .map(n -> n.substring(0, n.length() - suffix.length()))
          .sorted()
          .toList();
    } catch (IOException e) {
      throw new JournalException("cannot list " + dir, e);
    }
  }
}
