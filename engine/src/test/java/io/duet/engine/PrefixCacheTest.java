package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** A prompt whose prefix is cached reuses those blocks: same output, fewer tokens computed. */
class PrefixCacheTest {

  private static final String SHARED = "Once upon a time, pixels unfolding like petals. "
      + "Classifications unfold, a kaleidoscope of probability revealing";

  @Test
  void sharedPrefixIsReusedAndTheOutputIsUnchanged() {
    try (Engine warm = Engines.aidreams(); Engine cold = Engines.aidreams()) {
      int[] first = warm.tokenizer().encode(SHARED + " hidden patterns.", true);
      int[] second = warm.tokenizer().encode(SHARED + " a robot's dream", true);
      SamplingParams params = SamplingParams.greedy(40).withIgnoreEos(true);
      int blockSize = warm.options().blockSize();
      int common = commonPrefix(first, second);
      assertTrue(common >= 2 * blockSize, "prompts share only " + common + " tokens");

      new OfflineGenerator(warm, 1).generate(first, params);
      long before = warm.computedTokens();
      OfflineGenerator.Completion reused = new OfflineGenerator(warm, 1).generate(second, params);
      long computedWarm = warm.computedTokens() - before;

      OfflineGenerator.Completion fresh = new OfflineGenerator(cold, 1).generate(second, params);
      long computedCold = cold.computedTokens();

      int expectedHit = Math.min(common, second.length - 1) / blockSize * blockSize;
      assertEquals(expectedHit, reused.cachedPromptTokens());
      assertEquals(0, fresh.cachedPromptTokens());
      assertEquals(computedCold - expectedHit, computedWarm);
      assertArrayEquals(fresh.outputTokens(), reused.outputTokens());
      assertEquals(0, warm.kvStats().usedBlocks());
      assertTrue(warm.kvStats().cachedBlocks() > 0);
    }
  }

  @Test
  void identicalPromptKeepsItsLastTokenToCompute() {
    try (Engine engine = Engines.aidreams()) {
      int[] prompt = engine.tokenizer().encode(SHARED, true);
      int[] exactBlocks = Arrays.copyOf(prompt, 2 * engine.options().blockSize());
      SamplingParams params = SamplingParams.greedy(5).withIgnoreEos(true);
      int[] expected = new OfflineGenerator(engine, 1).generate(exactBlocks, params).outputTokens();
      OfflineGenerator.Completion again = new OfflineGenerator(engine, 1).generate(exactBlocks, params);
      // Both blocks are cached, but the last token's logits are needed, so only the first block
      // can be taken from the cache.
      assertEquals(engine.options().blockSize(), again.cachedPromptTokens());
      assertArrayEquals(expected, again.outputTokens());
    }
  }

  @Test
  void warmUpLeavesNoBlockBehindAndNothingInThePrefixCache() {
    try (Engine engine = Engines.aidreams()) {
      engine.warmUp(20);
      assertEquals(0, engine.kvStats().usedBlocks());
      assertEquals(0, engine.kvStats().cachedBlocks());
      assertTrue(engine.computedTokens() > 20, "the warm-up ran the model");
    }
  }

  @Test
  void warmUpLongerThanOneSequenceRunsEveryStepOverSeveralSequences() {
    try (Engine engine = Engines.aidreams()) {
      int steps = 3 * engine.info().contextLength();
      engine.warmUp(steps);
      assertTrue(engine.computedTokens() >= steps, "ran " + engine.computedTokens() + " tokens");
      assertEquals(0, engine.kvStats().usedBlocks());
      assertEquals(0, engine.kvStats().cachedBlocks());
    }
  }

  @Test
  void warmUpStopsWhenItsTimeBudgetIsSpent() {
    try (Engine engine = Engines.aidreams()) {
      // A million steps would take minutes; a budget of 1 ms stops it after the first sequence's
      // prompt and at most a few steps.
      engine.warmUp(1_000_000, 1);
      assertTrue(engine.computedTokens() < 10_000, "ran " + engine.computedTokens() + " tokens");
      assertTrue(engine.computedTokens() > 0, "the warm-up ran the model");
      assertEquals(0, engine.kvStats().usedBlocks());
      assertEquals(0, engine.kvStats().cachedBlocks());
    }
  }

  private static int commonPrefix(int[] a, int[] b) {
    int n = 0;
    while (n < a.length && n < b.length && a[n] == b[n]) {
      n++;
    }
    return n;
  }
}
