package dev.ferry.node.journal;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.datatype.jdk8.Jdk8Module;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * {@link MigrationJournal} as JSON lines, {@code <dir>/<id>.<role>.jsonl}, fsynced on every append.
 * A torn last line (the agent died mid-write) is ignored on reading.
 */
public final class FileMigrationJournal implements MigrationJournal {
  private static final String SUFFIX = ".jsonl";
  private final Path dir;
  private final ObjectMapper json;

  public FileMigrationJournal(Path dir) {
    this.dir = dir;
    this.json =
        new ObjectMapper()
            .registerModule(new Jdk8Module())
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create the journal directory " + dir, e);
    }
  }

  private Path file(String migrationId, Role role) {
    return dir.resolve(migrationId + "." + role.name().toLowerCase(Locale.ROOT) + SUFFIX);
  }

  @Override
  public synchronized void append(String migrationId, Role role, JournalEntry entry) {
    try (FileChannel ch =
        FileChannel.open(
            file(migrationId, role),
            StandardOpenOption.CREATE,
            StandardOpenOption.WRITE,
            StandardOpenOption.APPEND)) {
      byte[] line = (json.writeValueAsString(entry) + "\n").getBytes(StandardCharsets.UTF_8);
      ByteBuffer b = ByteBuffer.wrap(line);
      while (b.hasRemaining()) {
        ch.write(b);
      }
      ch.force(true);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot append to the journal of " + migrationId, e);
    }
  }

  @Override
  public synchronized List<JournalEntry> read(String migrationId, Role role) {
    Path f = file(migrationId, role);
    if (!Files.exists(f)) {
      return List.of();
    }
    List<JournalEntry> out = new ArrayList<>();
    try {
      for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
        if (line.isBlank()) {
          continue;
        }
        try {
          out.add(json.readValue(line, JournalEntry.class));
        } catch (IOException torn) {
          break; // the last line of a write the agent did not finish
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the journal of " + migrationId, e);
    }
    return out;
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
      throw new UncheckedIOException("cannot list " + dir, e);
    }
  }
}
