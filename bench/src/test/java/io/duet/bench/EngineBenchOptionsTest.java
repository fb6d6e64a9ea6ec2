package io.duet.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import picocli.CommandLine;

/**
 * The options the engine benchmarks share reach them, and every benchmark's help is still the
 * one users know (the expected files are the help of the commands as they were written before
 * the shared options).
 */
class EngineBenchOptionsTest {

  @Test
  void threadsAndSeedReachPdLatency() {
    PdLatencyCommand pd = new PdLatencyCommand();
    new CommandLine(pd).parseArgs("model.bin", "-z", "tok.bin", "--threads", "2", "--seed", "7");
    assertEquals(2, pd.engineBench.engineOptions(Path.of("model.bin")).threads());
    assertEquals(7, pd.engineBench.seed);
  }

  @Test
  void kvTransferDefaultsToAllCoresAndSeed42() {
    KvTransferCommand kv = new KvTransferCommand();
    new CommandLine(kv).parseArgs("model.bin");
    assertEquals(Runtime.getRuntime().availableProcessors(),
        kv.engineBench.engineOptions(Path.of("model.bin")).threads());
    assertEquals(42, kv.engineBench.seed);
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"pd-latency", "kv-transfer", "eventbus-overhead"})
  void helpIsUnchanged(String name) throws IOException {
    CommandLine command = new CommandLine(new BenchMain()).getSubcommands().get(name);
    try (InputStream expected = getClass().getResourceAsStream("/usage/" + name + ".txt")) {
      assertEquals(new String(expected.readAllBytes(), StandardCharsets.UTF_8),
          command.getUsageMessage(CommandLine.Help.Ansi.OFF));
    }
  }
}
