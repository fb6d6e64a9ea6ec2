package io.duet.proxy.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;

/** The resident memory of a process, as Linux reports it. */
final class ProcessMemory {

  private ProcessMemory() {
  }

  /** {@code VmRSS} of process {@code pid} in KiB; empty once it has exited (or off Linux). */
  static OptionalLong residentKib(long pid) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
        if (line.startsWith("VmRSS:")) {
          return OptionalLong.of(Long.parseLong(line.replaceAll("[^0-9]", "")));
        }
      }
    } catch (IOException | NumberFormatException gone) {
      // the process exited between listing and reading
    }
    return OptionalLong.empty();
  }
}
