package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * What {@link Generation} guarantees whatever the sampler draws: control tokens never show as
 * text, and {@code minTokens} keeps every token that would stop a generation out of its first
 * tokens. On aidreams260K, whose BOS and EOS pieces are {@code \n<s>\n} and {@code \n</s>\n}.
 */
class GenerationRulesTest {

  private static final String PROMPT = "Once upon a time";
  private static Engine engine;

  @BeforeAll
  static void open() {
    engine = Engines.aidreams();
  }

  @AfterAll
  static void close() {
    engine.close();
  }

  private static Generation generate(String prompt, SamplingParams params) {
    Generation generation = Engines.generateAlone(engine, engine.tokenizer().encode(prompt, true),
        params);
    engine.release(generation.sequence());
    return generation;
  }

  @Test
  void controlTokensGeneratedPastTheEndAddNoText() {
    int withControlTokens = 0;
    for (int seed = 0; seed < 8; seed++) {
      Generation generation = generate(PROMPT, SamplingParams.greedy(100).withTemperature(1f)
          .withSeed(seed).withIgnoreEos(true));
      if (Arrays.stream(generation.outputTokens()).anyMatch(engine.info()::isControlToken)) {
        withControlTokens++;
      }
      assertFalse(generation.text().contains("<s>") || generation.text().contains("</s>"),
          "seed " + seed + ": " + generation.text());
    }
    assertTrue(withControlTokens > 0, "no generation sampled a control token: nothing was shown");
  }

  @Test
  void noEndTokenCanEndAGenerationBeforeMinTokens() {
    // A seed whose text ends at EOS well before the context does.
    SamplingParams sampled = SamplingParams.greedy(100).withTemperature(1f);
    Generation natural = null;
    for (int seed = 0; natural == null || natural.finishReason() != FinishReason.STOP
        || natural.outputTokenCount() > 50; seed++) {
      assertTrue(seed < 200, "no seed ends at EOS within 50 tokens");
      sampled = sampled.withSeed(seed);
      natural = generate(PROMPT, sampled);
    }
    int minTokens = natural.outputTokenCount() + 10;
    Generation held = generate(PROMPT, sampled.withMinTokens(minTokens));
    assertTrue(held.outputTokenCount() >= minTokens, held.outputTokenCount() + " tokens");
    assertTrue(Arrays.stream(held.outputTokens()).limit(minTokens)
        .noneMatch(engine.info()::isEndToken));
  }

  @Test
  void noStopTokenCanBeSampledBeforeMinTokens() {
    Generation natural = generate(PROMPT, SamplingParams.greedy(40));
    int stopToken = natural.outputTokens()[3];
    Generation stopped = generate(PROMPT, SamplingParams.greedy(40)
        .withStopTokenIds(List.of(stopToken)));
    assertEquals(3, stopped.outputTokenCount(), "the fourth token stops it");
    Generation held = generate(PROMPT, SamplingParams.greedy(40)
        .withStopTokenIds(List.of(stopToken)).withMinTokens(8));
    assertTrue(held.outputTokenCount() >= 8, held.outputTokenCount() + " tokens");
    assertTrue(Arrays.stream(held.outputTokens()).limit(8).noneMatch(t -> t == stopToken));
  }

  @Test
  void minTokensAboveMaxTokensIsRefused() {
    assertThrows(IllegalArgumentException.class,
        () -> SamplingParams.greedy(4).withMinTokens(5));
  }
}
