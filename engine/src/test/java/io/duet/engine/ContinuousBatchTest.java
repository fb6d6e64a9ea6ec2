package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A continuous batch reproduces each generation as it runs alone, whenever it joins, and every
 * way out of the batch (finished, failed, removed, a failed forward pass) frees the blocks.
 */
class ContinuousBatchTest {

  private static final SamplingParams PARAMS = SamplingParams.greedy(24).withIgnoreEos(true);

  /** Everything the batch reports, by tag. */
  private static final class Reports implements ContinuousBatch.Listener<String> {
    final Map<String, List<Generation.Delta>> deltas = new LinkedHashMap<>();
    final Map<String, RuntimeException> failures = new LinkedHashMap<>();

    @Override
    public void onToken(String tag, Generation generation, Generation.Delta delta) {
      deltas.computeIfAbsent(tag, t -> new ArrayList<>()).add(delta);
    }

    @Override
    public void onFailure(String tag, Generation generation, RuntimeException error) {
      failures.put(tag, error);
    }

    int[] tokens(String tag) {
      return deltas.get(tag).stream().mapToInt(Generation.Delta::token).toArray();
    }

    /** Checks that only the last delta of {@code tag} finishes it. */
    void assertFinishedOnceAtTheEnd(String tag) {
      List<Generation.Delta> list = deltas.get(tag);
      for (int i = 0; i < list.size() - 1; i++) {
        assertNull(list.get(i).finish(), tag + " delta " + i);
      }
      assertEquals(FinishReason.LENGTH, list.get(list.size() - 1).finish(), tag);
    }
  }

  /** What the batch reported (JUnit makes a fresh instance for every test). */
  private final Reports reports = new Reports();
  private Engine engine;
  private ContinuousBatch<String> batch;

  @BeforeEach
  void openEngine() {
    engine = Engines.aidreams();
    batch = new ContinuousBatch<>(engine, reports);
  }

  @AfterEach
  void closeEngine() {
    engine.close();
  }

  private static int[] prompt(Engine engine, String text) {
    return engine.tokenizer().encode(text, true);
  }

  private static Generation generation(Engine engine, int[] prompt, SamplingParams params) {
    return new Generation(engine, engine.allocate(prompt), params,
        new Sampler(params, engine.info().vocabSize()));
  }

  private Generation generation(String text) {
    return generation(engine, prompt(engine, text), PARAMS);
  }

  private static int[] alone(Engine engine, int[] prompt, SamplingParams params) {
    Generation generation = Engines.generateAlone(engine, prompt, params);
    engine.release(generation.sequence());
    return generation.outputTokens();
  }

  private static void stepToTheEnd(ContinuousBatch<?> batch) {
    while (!batch.isEmpty()) {
      batch.step();
    }
  }

  @Test
  void generationsJoiningAtDifferentStepsGetTheirAloneTokensAndFreeTheirBlocks() {
    batch.join("a", generation("Once upon a time"));
    batch.step();
    batch.step();
    batch.step();
    // b's prompt is prefilled in the same pass as a's fourth token
    batch.join("b", generation("The robot"));
    batch.step();
    // c joins as an imported sequence does: prompt computed, first token sampled elsewhere
    Generation c = generation("Hello world");
    engine.step(List.of(c.sequence()));
    int cFirst = c.sampleNext();
    batch.join("c", c, cFirst);
    assertEquals(cFirst, reports.deltas.get("c").get(0).token(),
        "the given token is reported at once");
    assertEquals(3, batch.size());
    stepToTheEnd(batch);

    try (Engine solo = Engines.aidreams()) {
      Map<String, String> texts = Map.of("a", "Once upon a time", "b", "The robot",
          "c", "Hello world");
      texts.forEach((tag, text) -> {
        reports.assertFinishedOnceAtTheEnd(tag);
        assertArrayEquals(alone(solo, prompt(solo, text), PARAMS), reports.tokens(tag), tag);
      });
    }
    assertTrue(reports.failures.isEmpty(), reports.failures.toString());
    assertEquals(0, engine.kvStats().usedBlocks());
  }

  @Test
  void aGivenTokenThatEndsTheGenerationNeverJoins() {
    Generation generation = generation(engine, prompt(engine, "The robot"),
        SamplingParams.greedy(24));

    batch.join("eos", generation, Engines.EOS);

    assertTrue(batch.isEmpty());
    assertEquals(FinishReason.STOP, reports.deltas.get("eos").get(0).finish());
    assertTrue(generation.sequence().isReleased());
    assertEquals(0, engine.kvStats().usedBlocks());
  }

  @Test
  void aGenerationThatFailsLeavesAloneAndTheOthersGoOn() {
    // Three blocks of 16 tokens: two 16-token prompts take one each, so after the first step
    // only the first of them finds a block for its next token.
    try (Engine small = Engines.open(Engines.aidreamsOptions().kvBlocks(3))) {
      int blockSize = small.options().blockSize();
      int[] first = new int[blockSize];
      int[] second = new int[blockSize];
      for (int i = 0; i < blockSize; i++) {
        first[i] = 10 + i;
        second[i] = 100 + i;
      }
      first[0] = Engines.BOS;
      second[0] = Engines.BOS;
      SamplingParams params = SamplingParams.greedy(8).withIgnoreEos(true);
      ContinuousBatch<String> smallBatch = new ContinuousBatch<>(small, reports);
      smallBatch.join("first", generation(small, first, params));
      smallBatch.join("second", generation(small, second, params));

      smallBatch.step();

      assertInstanceOf(KvCacheFullException.class, reports.failures.get("second"));
      assertFalse(reports.deltas.containsKey("second"), "a failed token is not reported");
      assertEquals(1, smallBatch.size());
      assertEquals(2, small.kvStats().usedBlocks(), "the failed sequence's block is freed");
      stepToTheEnd(smallBatch);
      assertArrayEquals(alone(engine, first, params), reports.tokens("first"));
      assertEquals(0, small.kvStats().usedBlocks());
    }
  }

  @Test
  void aRemovedGenerationIsFreedAndHeardOfNoMore() {
    Generation removed = generation("Once upon a time");
    batch.join("removed", removed);
    batch.join("kept", generation("The robot"));
    batch.step();

    assertTrue(batch.remove("removed"));
    assertFalse(batch.remove("removed"), "it is gone");
    assertTrue(removed.sequence().isReleased());
    stepToTheEnd(batch);

    assertEquals(1, reports.deltas.get("removed").size(), "only the token before the removal");
    assertEquals(PARAMS.maxTokens(), reports.deltas.get("kept").size());
    assertEquals(0, engine.kvStats().usedBlocks());
  }

  @Test
  void aFailedForwardPassLeavesEveryMemberForReleaseAll() {
    batch.join("x", generation("Hello world"));
    Generation broken = generation("Once upon a time");
    batch.join("broken", broken);
    // a released sequence makes the engine refuse the whole step
    engine.release(broken.sequence());

    assertThrows(IllegalStateException.class, batch::step);

    assertTrue(reports.deltas.isEmpty() && reports.failures.isEmpty(), "no token was taken");
    assertEquals(2, batch.size());
    assertEquals(List.of("x", "broken"), batch.releaseAll());
    assertTrue(batch.isEmpty());
    assertEquals(0, engine.kvStats().usedBlocks());
  }
}
