package io.duet.engine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.duet.engine.EngineOptions;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import picocli.CommandLine;

/**
 * The options every engine command shares reach the engine, and each command's help is still
 * the one users know (the expected files are the commands' help; they change only with a
 * deliberate change of the options, such as the checkpoint directories and token-id prompts of
 * DeepSeek-V3).
 */
class EngineArgumentsTest {

  @Test
  void generateOpensTheModelWithTheThreadsAskedFor() {
    GenerateCommand generate = new GenerateCommand();
    new CommandLine(generate).parseArgs("model.bin", "--threads", "3");
    EngineOptions options = generate.engineArguments.engineOptions();
    assertEquals(Path.of("model.bin"), options.modelPath());
    assertEquals(3, options.threads());
  }

  @Test
  void benchUsesAllCoresUnlessToldOtherwise() {
    BenchCommand bench = new BenchCommand();
    new CommandLine(bench).parseArgs("model.bin");
    EngineOptions options = bench.engineArguments.engineOptions();
    assertEquals(Path.of("model.bin"), options.modelPath());
    assertEquals(Runtime.getRuntime().availableProcessors(), options.threads());
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"generate", "bench"})
  void helpIsUnchanged(String name) throws IOException {
    CommandLine command = new CommandLine(new EngineCli()).getSubcommands().get(name);
    try (InputStream expected = getClass().getResourceAsStream("/usage/" + name + ".txt")) {
      assertEquals(new String(expected.readAllBytes(), StandardCharsets.UTF_8),
          command.getUsageMessage(CommandLine.Help.Ansi.OFF));
    }
  }
}
