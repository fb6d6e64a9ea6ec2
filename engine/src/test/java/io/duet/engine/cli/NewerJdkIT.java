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
import org.junit.jupiter.api.Test;

/**
 * The packaged engine jar on a Java 22+ runtime (the newest JDK the build found, passed as
 * {@code duet.java22.home}): it must pick its multi-release Vector API kernels, not fall back to
 * scalar ones, and still reproduce run.c's greedy output byte for byte.
 */
class NewerJdkIT {

  private static final Path JAR = Path.of("target/engine.jar");

  @Test
  void newerJdkRunsTheVectorKernelsAndReproducesRunC() throws Exception {
    String model = TestFiles.shared("models/aidreams260K.bin").toString();
    String tokenizer = TestFiles.shared("models/aidreams260K.tok512.bin").toString();

    Result generated = run("generate", model, "-z", tokenizer, "-t", "0", "-n", "128",
        "-i", "Once upon a time");
    String expected = Files.readString(TestFiles.shared("models/aidreams260K.greedy.txt"));
    assertEquals(expected + "\n", generated.stdout, generated.stderr);

    Result bench = run("bench", model, "--repeat", "1", "--decode-tokens", "4", "--batch", "2",
        "--prompt-tokens", "16");
    assertTrue(bench.stdout.contains("kernels: Vector API kernels"), bench.stdout + bench.stderr);
  }

  private record Result(String stdout, String stderr) {}

  private static Result run(String... args) throws IOException, InterruptedException {
    Path java = Path.of(System.getProperty("duet.java22.home"), "bin", "java");
    assertTrue(Files.isExecutable(java), "no Java 22+ runtime at " + java);
    List<String> command = new ArrayList<>(List.of(java.toString(), "-jar", JAR.toString()));
    command.addAll(List.of(args));
    Path out = Files.createTempFile("engine-jdk22-", ".out");
    Path err = Files.createTempFile("engine-jdk22-", ".err");
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
