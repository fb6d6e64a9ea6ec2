package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The blocks a scheduler reserves for a generation are exactly what the generation uses. */
class ReservationTest {

  @ParameterizedTest(name = "prompt {0}, max tokens {1}")
  @CsvSource({"1, 1", "16, 1", "16, 2", "15, 2", "17, 16", "40, 33", "100, 100"})
  void aFullLengthGenerationUsesExactlyTheReservedBlocks(int promptTokens, int maxTokens) {
    try (Engine engine = Engines.aidreams()) {
      int[] prompt = new int[promptTokens];
      Arrays.fill(prompt, 5);
      prompt[0] = Engines.BOS;
      Sequence sequence = Engines.generateAlone(engine, prompt,
          SamplingParams.greedy(maxTokens).withIgnoreEos(true)).sequence();
      assertEquals(engine.blocksForGeneration(promptTokens, maxTokens), sequence.blockCount());
      engine.release(sequence);
    }
  }

  @Test
  void theModelsContextCapsTheReservation() {
    try (Engine engine = Engines.aidreams()) {
      int seqLen = engine.info().contextLength();
      assertEquals(seqLen / engine.options().blockSize(), engine.blocksForGeneration(100, 1000));
    }
  }
}
