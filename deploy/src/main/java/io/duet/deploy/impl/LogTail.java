package io.duet.deploy.impl;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** The last lines of a log, for a report. */
public final class LogTail {

  private LogTail() {
  }

  /** Up to {@code count} last lines of {@code file} (all when 0), or why there are none. */
  public static String of(Path file, int count) {
    if (!Files.isRegularFile(file)) {
      return "(no " + file + ")\n";
    }
    try {
      // a log is text, but a JVM that died mid-write may leave a broken character
      List<String> lines = new String(Files.readAllBytes(file), StandardCharsets.UTF_8)
          .lines().toList();
      int from = count == 0 ? 0 : Math.max(0, lines.size() - count);
      return String.join("\n", lines.subList(from, lines.size())) + "\n";
    } catch (IOException e) {
      return "(cannot read " + file + ": " + e.getMessage() + ")\n";
    }
  }
}
