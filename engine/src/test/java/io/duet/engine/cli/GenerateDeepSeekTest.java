package io.duet.engine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Engines;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint;
import io.duet.engine.deepseek.TinyDeepSeek;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code engine.jar generate DIR} on a Hugging Face checkpoint, by token ids. */
class GenerateDeepSeekTest {

  @TempDir
  Path dir;

  private record Run(int exit, String out, String err) {
  }

  private static Run generate(String... args) {
    GenerateCommand command = new GenerateCommand();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    command.out = new PrintStream(out, true, StandardCharsets.UTF_8);
    CommandLine line = new CommandLine(command);
    line.setErr(new java.io.PrintWriter(err, true, StandardCharsets.UTF_8));
    int exit = line.execute(args);
    return new Run(exit, out.toString(StandardCharsets.UTF_8),
        err.toString(StandardCharsets.UTF_8));
  }

  @Test
  void printIdsGivesTheGreedyTokensOfTheEngine() throws IOException {
    TinyDeepSeek.write(dir, RandomDeepSeekCheckpoint.Storage.BF16, true, false, 4);
    int[] prompt = {0, 17, 42};
    int steps = 20;
    Run run = generate(dir.toString(), "--threads", "2", "-t", "0", "-n", String.valueOf(steps),
        "--prompt-ids", "0,17,42", "--print-ids");
    assertEquals(0, run.exit(), run.err());

    int[] expected;
    try (Engine engine = Engines.open(new EngineOptions().modelPath(dir).threads(2))) {
      // steps count positions, prompt included; the model's EOS (1) ends the generation
      expected = new OfflineGenerator(engine, 1)
          .generate(prompt, SamplingParams.greedy(steps - (prompt.length - 1)))
          .outputTokens();
    }
    String ids = Arrays.stream(expected).mapToObj(String::valueOf)
        .collect(Collectors.joining(" "));
    assertTrue(expected.length > 1, "a generation of several tokens");
    assertEquals(ids + "\n", run.out());
  }

  @Test
  void mtpOnPrintsTheSameIdsAndItsDrafts() throws IOException {
    TinyDeepSeek.write(dir, RandomDeepSeekCheckpoint.Storage.BF16, true, false, 4);
    String[] args = {dir.toString(), "--threads", "2", "-t", "0", "-n", "40", "--prompt-ids",
        "0,17,42", "--print-ids"};
    Run off = generate(args);
    String[] withMtp = Arrays.copyOf(args, args.length + 2);
    withMtp[args.length] = "--mtp";
    withMtp[args.length + 1] = "on";
    Run on = generate(withMtp);
    assertEquals(0, on.exit(), on.err());
    assertEquals(off.out(), on.out());
    assertTrue(on.out().split(" ").length > 10, on.out());
    Run bad = generate(dir.toString(), "--mtp", "maybe", "--prompt-ids", "0", "--print-ids");
    assertEquals(2, bad.exit());
    assertTrue(bad.err().contains("--mtp"), bad.err());
  }

  @Test
  void aModelWithoutTokenizerNeedsPromptIdsAndPrintIds() throws IOException {
    TinyDeepSeek.write(dir, RandomDeepSeekCheckpoint.Storage.BF16, true, false, 4);
    Run run = generate(dir.toString(), "--threads", "2", "-t", "0", "-i", "hello");
    assertEquals(2, run.exit());
    assertTrue(run.err().contains("has no tokenizer: give --prompt-ids and --print-ids"),
        run.err());
    assertEquals("", run.out());
  }
}
