package dev.ferry.node.validation;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Confines disk paths to the configured datastore roots. A path is accepted only if it is absolute,
 * normal but for repeated slashes (no {@code .}, {@code ..} or trailing {@code /}), made of plain
 * characters, lies below a root, and still lies below that root once symbolic links are resolved.
 *
 * <p>Repeated slashes are real: OpenNebula's default datastore location is {@code
 * /var/lib/one//datastores}, and libvirt and QEMU keep the string as given. Ferry compares paths
 * only in their {@link #collapsed} form, so it reads what libvirt and QEMU report through it.
 */
public final class DatastorePaths {
  private static final Pattern PLAIN = Pattern.compile("/[A-Za-z0-9_.+/-]*");

  private final List<Path> roots;

  public DatastorePaths(List<Path> roots) {
    if (roots.isEmpty()) {
      throw new IllegalArgumentException("no datastore roots configured");
    }
    this.roots = roots.stream().map(r -> r.toAbsolutePath().normalize()).toList();
  }

  public List<Path> roots() {
    return roots;
  }

  /** The validated path, or {@link InvalidInputException} saying why it is refused. */
  public Path confine(String field, String raw) {
    if (raw == null || raw.isEmpty()) {
      throw new InvalidInputException(field, "missing path");
    }
    if (!PLAIN.matcher(raw).matches()) {
      throw new InvalidInputException(
          field,
          "'"
              + Names.printable(raw)
              + "' is not an absolute path of A-Z a-z 0-9 _ . + - / characters");
    }
    String collapsed = collapsed(raw);
    Path path = Path.of(collapsed);
    if (!path.normalize().toString().equals(collapsed)) {
      throw new InvalidInputException(
          field, "'" + raw + "' is not a normal path (. .. or a trailing /)");
    }
    Path root =
        rootOf(path)
            .orElseThrow(
                () ->
                    new InvalidInputException(
                        field, "'" + raw + "' is outside the datastore roots " + roots));
    Path existing = path;
    while (existing != null && !Files.exists(existing, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      existing = existing.getParent();
    }
    if (existing != null && existing.startsWith(root)) {
      try {
        Path real = existing.toRealPath();
        Path realRoot = root.toRealPath();
        if (!real.startsWith(realRoot)) {
          throw new InvalidInputException(
              field, "'" + raw + "' resolves to " + real + ", outside the datastore root " + root);
        }
      } catch (IOException e) {
        throw new InvalidInputException(field, "cannot resolve '" + raw + "': " + e.getMessage());
      }
    }
    return path;
  }

  /** {@code path} with every run of slashes made one: the form Ferry compares paths in. */
  public static String collapsed(String path) {
    return path.indexOf("//") < 0 ? path : path.replaceAll("/{2,}", "/");
  }

  /** The root {@code path} lies strictly below, if any. */
  public Optional<Path> rootOf(Path path) {
    return roots.stream().filter(r -> path.startsWith(r) && !path.equals(r)).findFirst();
  }
}
