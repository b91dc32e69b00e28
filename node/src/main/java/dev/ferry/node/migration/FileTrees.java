package dev.ferry.node.migration;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;

/** File-tree helpers that never follow symbolic links out of the tree. */
public final class FileTrees {
  private FileTrees() {}

  /** Deletes a tree bottom-up without following links; returns what was removed. */
  public static List<String> deleteTree(Path dir) throws IOException {
    List<String> removed = new ArrayList<>();
    if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
      return removed;
    }
    Files.walkFileTree(
        dir,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
              throws IOException {
            Files.delete(file);
            removed.add(file.toString());
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
            if (e != null) {
              throw e;
            }
            Files.delete(d);
            removed.add(d + "/");
            return FileVisitResult.CONTINUE;
          }
        });
    return removed;
  }

  /**
   * Deletes the directories of a tree that are empty once their empty subdirectories are gone,
   * bottom-up, without following links; files and the directories that hold them stay.
   */
  public static List<String> deleteEmptyDirectories(Path dir) throws IOException {
    List<String> removed = new ArrayList<>();
    if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
      return removed;
    }
    Files.walkFileTree(
        dir,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
            if (e != null) {
              throw e;
            }
            try (var entries = Files.list(d)) {
              if (entries.findAny().isEmpty()) {
                Files.delete(d);
                removed.add(d + "/");
              }
            }
            return FileVisitResult.CONTINUE;
          }
        });
    return removed;
  }
}
