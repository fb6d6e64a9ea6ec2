package io.duet.bench;

import io.duet.bench.impl.Progress;
import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** What every benchmark shares: stdout/stderr of the command line and {@code --json FILE}. */
abstract class BenchCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Option(names = "--json", paramLabel = "FILE", description = "also write the figures as JSON")
  Path json;

  private final double loadAtStart = loadAverage();

  /**
   * The machine the figures come from: cores and the 1-minute load average when the command
   * started and now. On a shared machine other processes' CPU use skews every figure.
   */
  String machine() {
    return String.format(java.util.Locale.ROOT, "machine: %d cores, Java %s, 1-min load "
            + "average %.2f at start, %.2f at end", Runtime.getRuntime().availableProcessors(),
        Runtime.version(), loadAtStart, loadAverage());
  }

  JsonObject machineJson() {
    return new JsonObject().put("cores", Runtime.getRuntime().availableProcessors())
        .put("java", Runtime.version().toString()).put("loadAverageAtStart", loadAtStart)
        .put("loadAverageAtEnd", loadAverage());
  }

  private static double loadAverage() {
    return ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
  }

  PrintWriter out() {
    return spec.commandLine().getOut();
  }

  Progress progress(int phases) {
    return new Progress(spec.commandLine().getErr(), phases);
  }

  ParameterException badParameter(String message) {
    return new ParameterException(spec.commandLine(), message);
  }

  void writeJson(JsonObject figures) throws Exception {
    if (json != null) {
      Path parent = json.toAbsolutePath().getParent();
      if (parent != null) {
        Files.createDirectories(parent);
      }
      Files.writeString(json, figures.encodePrettily() + "\n", StandardCharsets.UTF_8);
    }
  }

  void requirePositive(int value, String name) {
    if (value <= 0) {
      throw badParameter(name + " must be positive, was " + value);
    }
  }

  void requireNotNegative(int value, String name) {
    if (value < 0) {
      throw badParameter(name + " must not be negative");
    }
  }
}
