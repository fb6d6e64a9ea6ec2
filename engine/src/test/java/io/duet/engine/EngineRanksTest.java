package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Engines opened together over one load of a model ({@link Engine#openRanks}), as the ranks of
 * a decode instance are: the weights are loaded once and let go of with the last engine, and
 * each engine, driven by a thread of its own at the same time as the others, generates what an
 * engine opened alone generates.
 */
class EngineRanksTest {

  private static final List<String> PROMPTS = List.of("Once upon a time", "The robot",
      "In the quiet lab, a", "Hello world", "Pixels dream of", "Whispers of data");

  private static EngineOptions options() {
    return Engines.aidreamsOptions().threads(1);
  }

  @Test
  void ranksDrivenAtOnceGenerateWhatAnEngineOpenedAloneGenerates() throws Exception {
    SamplingParams greedy = SamplingParams.greedy(80).withIgnoreEos(true);
    SamplingParams seeded = greedy.withTemperature(0.9f).withTopP(0.9f).withSeed(42);
    List<Engine> ranks = Engine.openRanks(options(), 2);
    ExecutorService threads = Executors.newFixedThreadPool(2);
    try (Engine alone = Engines.open(options())) {
      List<int[]> prompts = new ArrayList<>();
      for (String text : PROMPTS) {
        prompts.add(alone.tokenizer().encode(text, true));
      }
      List<OfflineGenerator.Completion> expectedGreedy =
          new OfflineGenerator(alone, 4).generateAll(prompts, greedy);
      List<OfflineGenerator.Completion> expectedSeeded =
          new OfflineGenerator(alone, 4).generateAll(prompts, seeded);

      Future<List<OfflineGenerator.Completion>> rank0 = threads.submit(
          () -> new OfflineGenerator(ranks.get(0), 4).generateAll(prompts, greedy));
      Future<List<OfflineGenerator.Completion>> rank1 = threads.submit(
          () -> new OfflineGenerator(ranks.get(1), 4).generateAll(prompts, seeded));
      assertSameTokens(expectedGreedy, rank0.get(60, TimeUnit.SECONDS), "rank 0, greedy");
      assertSameTokens(expectedSeeded, rank1.get(60, TimeUnit.SECONDS), "rank 1, seeded");
    } finally {
      threads.shutdownNow();
      ranks.forEach(Engine::close);
    }
  }

  private static void assertSameTokens(List<OfflineGenerator.Completion> expected,
      List<OfflineGenerator.Completion> actual, String what) {
    assertEquals(expected.size(), actual.size(), what);
    for (int i = 0; i < expected.size(); i++) {
      assertEquals(80, expected.get(i).outputTokens().length);
      assertArrayEquals(expected.get(i).outputTokens(), actual.get(i).outputTokens(),
          what + ", prompt '" + PROMPTS.get(i) + "'");
    }
  }

  @Test
  void eachRankHasAKvCacheOfItsOwn() throws Exception {
    List<Engine> ranks = Engine.openRanks(options(), 2);
    try {
      Engine first = ranks.get(0);
      Engine second = ranks.get(1);
      assertNotSame(first, second);
      Sequence sequence = first.allocate(new int[40]);
      first.step(List.of(sequence));
      assertEquals(3, first.kvStats().usedBlocks());
      assertEquals(0, second.kvStats().usedBlocks());
      assertEquals(first.kvStats().totalBlocks(), second.kvStats().totalBlocks());
      assertEquals(first.layout().fingerprint(), second.layout().fingerprint());
      first.release(sequence);
    } finally {
      ranks.forEach(Engine::close);
    }
  }

  @Test
  void theWeightsAreLoadedOnceAndLetGoOfWhenTheLastRankCloses() throws Exception {
    int openedBefore = CountingArchitecture.OPENED.get();
    int closedBefore = CountingArchitecture.CLOSED.get();
    List<Engine> ranks = Engine.openRanks(options().architecture(CountingArchitecture.NAME), 3);
    assertEquals(3, ranks.size());
    assertEquals(openedBefore + 1, CountingArchitecture.OPENED.get(), "loaded once");

    int[] prompt = ranks.get(2).tokenizer().encode("Once upon a time", true);
    SamplingParams params = SamplingParams.greedy(40).withIgnoreEos(true);
    int[] before = new OfflineGenerator(ranks.get(2), 1).generate(prompt, params).outputTokens();
    ranks.get(0).close();
    ranks.get(0).close();
    ranks.get(1).close();
    assertEquals(closedBefore, CountingArchitecture.CLOSED.get(),
        "the weights stay while a rank uses them, however often another is closed");
    assertArrayEquals(before,
        new OfflineGenerator(ranks.get(2), 1).generate(prompt, params).outputTokens(),
        "the last rank generates as before");

    ranks.get(2).close();
    assertEquals(closedBefore + 1, CountingArchitecture.CLOSED.get(), "let go of once");
  }

  @Test
  void anOpenThatFailsLetsGoOfTheWeights() {
    int closedBefore = CountingArchitecture.CLOSED.get();
    // More KV blocks than a Java array holds: the first engine cannot be made.
    assertThrows(IllegalArgumentException.class, () -> Engine.openRanks(
        options().architecture(CountingArchitecture.NAME).kvBlocks(Integer.MAX_VALUE), 2));
    assertEquals(closedBefore + 1, CountingArchitecture.CLOSED.get());
  }

  @Test
  void aRankCountBelowOneIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> Engine.openRanks(options(), 0));
  }
}
