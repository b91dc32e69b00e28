package dev.ferry.node.host;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * Which files a domain's QEMU has open, from {@code /proc/<pid>/fd}. This is how the engine proves
 * the running QEMU uses the file at the configured path (OpenNebula issue 8092: an rsync that
 * replaces the file leaves QEMU on a deleted inode).
 */
public final class OpenFiles {
  private final Path qemuRunDir;
  private final Path proc;

  public OpenFiles(Path qemuRunDir) {
    this(qemuRunDir, Path.of("/proc"));
  }

  OpenFiles(Path qemuRunDir, Path proc) {
    this.qemuRunDir = qemuRunDir;
    this.proc = proc;
  }

  /** A file descriptor of the process: where its link points, and the inode it really has open. */
  public record OpenFile(int fd, String target, long inode) {
    public boolean deleted() {
      return target.endsWith(" (deleted)");
    }
  }

  /** The domain's QEMU pid, from libvirt's pid file. */
  public Optional<Long> qemuPid(String domain) throws IOException {
    Path pidFile = qemuRunDir.resolve(domain + ".pid");
    if (!Files.exists(pidFile)) {
      return Optional.empty();
    }
    String text = Files.readString(pidFile).trim();
    return text.isEmpty() ? Optional.empty() : Optional.of(Long.parseLong(text));
  }

  public List<OpenFile> openFiles(long pid) throws IOException {
    List<OpenFile> out = new ArrayList<>();
    try (Stream<Path> fds = Files.list(proc.resolve(Long.toString(pid)).resolve("fd"))) {
      for (Path fd : fds.toList()) {
        try {
          String target = Files.readSymbolicLink(fd).toString();
          long inode = (Long) Files.getAttribute(fd, "unix:ino");
          out.add(new OpenFile(Integer.parseInt(fd.getFileName().toString()), target, inode));
        } catch (NoSuchFileException closed) {
          // closed while we looked
        }
      }
    }
    return out;
  }

  /** The inode at {@code path} (following symbolic links, as QEMU opens it). */
  public static long inodeAt(Path path) throws IOException {
    return (Long) Files.getAttribute(path, "unix:ino");
  }

  /** The inode at {@code path} without following a final symbolic link. */
  public static long linkInode(Path path) throws IOException {
    return (Long) Files.getAttribute(path, "unix:ino", LinkOption.NOFOLLOW_LINKS);
  }
}
