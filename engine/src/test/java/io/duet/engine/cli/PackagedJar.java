package io.duet.engine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.TestFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the packaged engine jar in a child JVM, for the integration tests of how it starts. */
final class PackagedJar {

  private static final Path JAR = Path.of("target/engine.jar");

  /** What a run printed. */
  record Result(String stdout, String stderr) {}

  private final Path java;
  private final List<String> jvmFlags;

  /**
   * @param javaHome the JDK to run the jar on
   * @param jvmFlags options before {@code -jar}
   */
  PackagedJar(Path javaHome, String... jvmFlags) {
    this.java = javaHome.resolve("bin").resolve("java");
    this.jvmFlags = List.of(jvmFlags);
    assertTrue(Files.isExecutable(java), "no Java runtime at " + java);
  }

  /** The greedy aidreams260K continuation of "Once upon a time" that run.c prints. */
  void assertReproducesRunC() throws IOException, InterruptedException {
    Result generated = run("generate", model(), "-z",
        TestFiles.shared("models/aidreams260K.tok512.bin").toString(), "-t", "0", "-n", "128",
        "-i", "Once upon a time");
    String expected = Files.readString(TestFiles.shared("models/aidreams260K.greedy.txt"));
    assertEquals(expected + "\n", generated.stdout, generated.stderr);
  }

  /** The bench's {@code kernels:} line: which kernels and weight loads the engine chose. */
  String kernelsLine() throws IOException, InterruptedException {
    return benchLine("kernels: ", model());
  }

  /** The line of a short bench run on {@code model} that starts with {@code prefix}. */
  String benchLine(String prefix, String model, String... options)
      throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("bench", model, "--repeat", "1",
        "--decode-tokens", "4", "--batch", "2", "--prompt-tokens", "16", "--warmup", "8"));
    args.addAll(List.of(options));
    Result bench = run(args.toArray(String[]::new));
    return bench.stdout.lines().filter(line -> line.startsWith(prefix)).findFirst()
        .orElseThrow(() -> new AssertionError("no '" + prefix + "' line in:\n" + bench.stdout
            + bench.stderr));
  }

  private static String model() {
    return TestFiles.shared("models/aidreams260K.bin").toString();
  }

  Result run(String... args) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(java.toString()));
    command.addAll(jvmFlags);
    command.addAll(List.of("-jar", JAR.toString()));
    command.addAll(List.of(args));
    Path out = Files.createTempFile("engine-jar-", ".out");
    Path err = Files.createTempFile("engine-jar-", ".err");
    Process process = new ProcessBuilder(command)
        .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
    try {
      assertTrue(process.waitFor(120, TimeUnit.SECONDS), "engine jar did not finish: " + command);
      Result result = new Result(Files.readString(out, StandardCharsets.UTF_8),
          Files.readString(err, StandardCharsets.UTF_8));
      assertEquals(0, process.exitValue(), result.stderr);
      return result;
    } finally {
      process.destroyForcibly();
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }
}
