package dev.ferry.node.image;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.node.process.ProcessResult;
import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import dev.ferry.node.validation.DatastorePaths;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** {@link ImageTool} over {@code qemu-img}'s JSON output. */
public final class QemuImgTool implements ImageTool {
  /** {@code qemu-img check} exit codes (qemu-img(1)). */
  private static final int CHECK_OK = 0;

  private static final int CHECK_CORRUPTIONS = 2;
  private static final int CHECK_LEAKS = 3;
  private static final int CHECK_NOT_SUPPORTED = 63;

  private static final ObjectMapper JSON = new ObjectMapper();

  private final ProcessRunner runner;
  private final String program;
  private final Duration timeout;

  public QemuImgTool(ProcessRunner runner, String program, Duration timeout) {
    this.runner = runner;
    this.program = program;
    this.timeout = timeout;
  }

  @Override
  public ImageInfo info(Path image, Access access) {
    return parseInfo(json(argv("info", access, "--output=json", file(image))));
  }

  @Override
  public List<ImageInfo> chain(Path image, Access access) {
    return parseChain(json(argv("info", access, "--output=json", "--backing-chain", file(image))));
  }

  @Override
  public CheckResult check(Path image, Access access) {
    ProcessRunner.Output out =
        runner.capture(
            ProcessSpec.of(argv("check", access, "--output=json", file(image)))
                .withTimeout(timeout)
                .withAcceptedExitCodes(
                    CHECK_OK, CHECK_CORRUPTIONS, CHECK_LEAKS, CHECK_NOT_SUPPORTED));
    out.result().orThrow();
    return parseCheck(out.result().exitCode(), out.stdout());
  }

  @Override
  public void removeBitmap(Path image, String bitmap) {
    runner
        .run(
            ProcessSpec.of(program, "bitmap", "--remove", file(image), bitmap).withTimeout(timeout),
            line -> {})
        .orThrow();
  }

  @Override
  public void create(Path image, ImageFormat format, long virtualSize, Optional<Backing> backing) {
    List<String> argv = new ArrayList<>(List.of(program, "create", "-q", "-f", format.qemuName()));
    backing.ifPresent(
        b -> {
          argv.addAll(List.of("-F", b.format().qemuName(), "-b", b.file()));
        });
    argv.add(file(image));
    argv.add(Long.toString(virtualSize));
    runner.run(ProcessSpec.of(argv).withTimeout(timeout), line -> {}).orThrow();
  }

  private List<String> argv(String command, Access access, String... rest) {
    List<String> argv = new ArrayList<>(List.of(program, command));
    if (access == Access.SHARED) {
      argv.add("-U");
    }
    argv.addAll(List.of(rest));
    return argv;
  }

  private String json(List<String> argv) {
    ProcessRunner.Output out = runner.capture(ProcessSpec.of(argv).withTimeout(timeout));
    ProcessResult result = out.result();
    if (!result.accepted()) {
      throw new ImageToolException(result.describe());
    }
    return out.stdout();
  }

  /**
   * qemu-img reads a file name such as {@code json:{...}} or {@code nbd:...} as a protocol
   * specification, so only absolute paths are passed, and always as plain files.
   */
  private static String file(Path image) {
    String s = image.toString();
    if (!image.isAbsolute()) {
      throw new IllegalArgumentException("image path must be absolute: " + s);
    }
    return s;
  }

  static ImageInfo parseInfo(String json) {
    try {
      return toInfo(JSON.readTree(json));
    } catch (IOException | RuntimeException e) {
      throw new ImageToolException("cannot parse qemu-img info output: " + e.getMessage(), e);
    }
  }

  static List<ImageInfo> parseChain(String json) {
    try {
      JsonNode root = JSON.readTree(json);
      List<ImageInfo> chain = new ArrayList<>();
      if (root.isArray()) {
        root.forEach(n -> chain.add(toInfo(n)));
      } else {
        chain.add(toInfo(root));
      }
      return chain;
    } catch (IOException | RuntimeException e) {
      throw new ImageToolException(
          "cannot parse qemu-img info --backing-chain output: " + e.getMessage(), e);
    }
  }

  static CheckResult parseCheck(int exitCode, String json) {
    if (exitCode == CHECK_NOT_SUPPORTED) {
      return CheckResult.notSupported();
    }
    try {
      JsonNode n = JSON.readTree(json);
      return new CheckResult(
          true,
          n.path("check-errors").asLong(0),
          n.path("corruptions").asLong(0),
          n.path("leaks").asLong(0),
          n.path("allocated-clusters").asLong(0),
          n.path("total-clusters").asLong(0));
    } catch (IOException | RuntimeException e) {
      throw new ImageToolException("cannot parse qemu-img check output: " + e.getMessage(), e);
    }
  }

  private static ImageInfo toInfo(JsonNode n) {
    List<ImageSnapshot> snapshots = new ArrayList<>();
    for (JsonNode s : n.path("snapshots")) {
      snapshots.add(
          new ImageSnapshot(
              required(s, "id").asText(),
              required(s, "name").asText(),
              s.path("vm-state-size").asLong(0),
              s.path("date-sec").asLong(0),
              s.path("date-nsec").asLong(0),
              s.path("vm-clock-sec").asLong(0),
              s.path("vm-clock-nsec").asLong(0)));
    }
    JsonNode data = n.path("format-specific").path("data");
    List<String> bitmaps = new ArrayList<>();
    for (JsonNode b : data.path("bitmaps")) {
      bitmaps.add(b.path("name").asText());
    }
    return new ImageInfo(
        // the form Ferry compares paths in: QEMU keeps a "//" it was given
        DatastorePaths.collapsed(required(n, "filename").asText()),
        ImageFormat.fromQemuName(required(n, "format").asText()),
        required(n, "virtual-size").asLong(),
        n.path("actual-size").asLong(0),
        n.has("cluster-size") ? Optional.of(n.get("cluster-size").asLong()) : Optional.empty(),
        n.has("backing-filename")
            ? Optional.of(n.get("backing-filename").asText())
            : Optional.empty(),
        snapshots,
        bitmaps,
        data.has("compat") ? Optional.of(data.get("compat").asText()) : Optional.empty(),
        data.path("corrupt").asBoolean(false));
  }

  private static JsonNode required(JsonNode n, String field) {
    JsonNode v = n.get(field);
    if (v == null || v.isNull()) {
      throw new IllegalArgumentException("field '" + field + "' missing");
    }
    return v;
  }
}
