package io.duet.engine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.duet.engine.TestFiles;
import io.duet.engine.WeightStorage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * The CLI reproduces llama2.c run.c's stdout byte for byte: greedy and seeded sampling on the
 * aidreams260K model. The expected files are run.c's own output (see reference/README.md).
 */
class GenerateCommandTest {

  private static String generate(String... args) {
    return generate(new GenerateCommand(), args);
  }

  /** Runs {@code command} (which the caller can inspect afterwards) on aidreams260K. */
  private static String generate(GenerateCommand command, String... args) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    command.out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
    String model = TestFiles.shared("models/aidreams260K.bin").toString();
    String tokenizer = TestFiles.shared("models/aidreams260K.tok512.bin").toString();
    String[] full = new String[args.length + 3];
    full[0] = model;
    full[1] = "-z";
    full[2] = tokenizer;
    System.arraycopy(args, 0, full, 3, args.length);
    int exit = new CommandLine(command).execute(full);
    assertEquals(0, exit, "exit code");
    return bytes.toString(StandardCharsets.UTF_8);
  }

  private static String reference(String name) throws IOException {
    try (InputStream in = GenerateCommandTest.class.getResourceAsStream("/reference/" + name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  @Test
  void greedyOutputEqualsTheSharedRunCReference() throws IOException {
    String expected = Files.readString(TestFiles.shared("models/aidreams260K.greedy.txt"));
    assertEquals(expected + "\n", generate("-t", "0", "-n", "128", "-i", "Once upon a time"));
  }

  @Test
  void weightsOnHugePagesGiveTheSameOutput() throws IOException {
    String expected = Files.readString(TestFiles.shared("models/aidreams260K.greedy.txt"));
    GenerateCommand greedy = new GenerateCommand();
    assertEquals(expected + "\n",
        generate(greedy, "-t", "0", "-n", "128", "-i", "Once upon a time", "--huge-pages"));
    GenerateCommand sampled = new GenerateCommand();
    assertEquals(reference("aidreams-sampled-t1-p0.9-s42.txt"), generate(sampled, "-t", "1.0",
        "-p", "0.9", "-s", "42", "-n", "100", "-i", "Once upon a time", "--huge-pages"));
    // The same output must come from weights copied off the heap, not from the mapped file
    // that a run without the flag uses (WeightStorageTest: an engine so opened runs on a copy).
    for (GenerateCommand command : new GenerateCommand[] {greedy, sampled}) {
      assertEquals(WeightStorage.HUGE_PAGES,
          command.engineArguments.engineOptions().weightStorage());
    }
    GenerateCommand plain = new GenerateCommand();
    new CommandLine(plain).parseArgs("model.bin");
    assertEquals(WeightStorage.MAPPED, plain.engineArguments.engineOptions().weightStorage());
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
      "aidreams-greedy-the-robot.txt          | -t 0 -n 128 | The robot",
      "aidreams-greedy-in-the-quiet-lab-a.txt | -t 0 -n 128 | In the quiet lab, a",
      "aidreams-greedy-hello-world.txt        | -t 0 -n 128 | Hello world",
      "aidreams-sampled-t1-p0.9-s42.txt       | -t 1.0 -p 0.9 -s 42 -n 100 | Once upon a time",
      "aidreams-sampled-t0.8-p1-s7.txt        | -t 0.8 -p 1.0 -s 7 -n 100 | The robot",
  })
  void outputEqualsRunC(String file, String options, String prompt) throws IOException {
    String[] opts = options.trim().split(" ");
    String[] args = new String[opts.length + 2];
    System.arraycopy(opts, 0, args, 0, opts.length);
    args[opts.length] = "-i";
    args[opts.length + 1] = prompt.trim();
    assertEquals(reference(file), generate(args));
  }

  @Test
  void emptyPromptStartsRightAfterBos() throws IOException {
    assertEquals(reference("aidreams-greedy-empty.txt"), generate("-t", "0", "-n", "128", "-i", ""));
  }

  @Test
  void stepsCountThePromptAndStopThere() {
    // "Once upon a time" is BOS plus 12 tokens here; 5 steps print only the first 5 prompt pieces.
    String full = generate("-t", "0", "-n", "128", "-i", "Once upon a time");
    String five = generate("-t", "0", "-n", "5", "-i", "Once upon a time");
    assertEquals(true, full.startsWith(five.strip()), five + " is not a prefix of " + full);
    assertEquals(true, five.length() < "Once upon a time".length() + 1, five);
  }
}
