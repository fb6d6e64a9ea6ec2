package io.duet.engine.deepseek;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Sampler;
import io.duet.engine.Sequence;
import io.duet.engine.WeightFormatMode;
import io.duet.engine.WeightStorage;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Storage;
import io.duet.engine.safetensors.SafetensorsCheckpoint;
import io.duet.engine.spi.ExpertExchangeException;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Expert parallelism: engines of a group, each holding only its share of the routed experts and
 * stepping together on threads of their own (a rank with nothing to decode steps empty),
 * produce exactly the logits and greedy tokens of one engine holding every expert.
 */
class ExpertParallelTest {

  /** A prompt per rank; ranks beyond them decode nothing and only serve their experts. */
  static final int[][] PROMPTS = {{0, 17, 42, 99, 5, 63, 8, 120, 31, 77, 2, 54, 19},
      {0, 5, 6, 7}, {0, 99, 98, 97, 96, 95, 94, 93, 92, 91, 90, 89, 88, 87, 86, 85, 84, 83, 82}};
  static final int STEPS = 10;

  @TempDir
  Path dir;

  private EngineOptions options() {
    return DeepSeekV3Test.options(dir);
  }

  @ParameterizedTest(name = "ep {0}, {1} expert slots")
  @CsvSource({"1, 0", "2, 0", "4, 0", "4, 32", "2, 20"})
  void ranksSharingTheExpertsDecodeExactlyAsOneEngine(int ep, int slots) throws Exception {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 13);
    List<float[][]> expected = new ArrayList<>();
    try (Engine alone = Engine.open(options())) {
      for (int[] prompt : PROMPTS) {
        expected.add(decode(alone, prompt));
      }
    }
    int ranks = Math.max(ep, 2);
    List<Engine> engines = Engine.openRanks(options().expertParallel(ep).expertSlots(slots),
        ranks);
    ExecutorService threads = Executors.newFixedThreadPool(ranks);
    try {
      List<Future<List<float[][]>>> results = new ArrayList<>();
      for (int r = 0; r < ranks; r++) {
        int rank = r;
        // Rank r decodes prompts r, r + ranks, ... one after another, so ranks run different
        // numbers of steps and some none; every rank steps the same number of times.
        results.add(threads.submit(() -> decodeInLockstep(engines.get(rank), rank, ranks)));
      }
      for (int r = 0; r < ranks; r++) {
        List<float[][]> got = results.get(r).get(60, TimeUnit.SECONDS);
        for (int i = 0; i < got.size(); i++) {
          float[][] want = expected.get(r + i * ranks);
          for (int step = 0; step < STEPS; step++) {
            assertArrayEquals(want[step], got.get(i)[step], "rank " + r + ", prompt "
                + (r + i * ranks) + ", step " + step);
          }
        }
      }
      if (ep > 1) {
        assertTrue(engines.get(0).expertExchangeNanos() > 0, "the ranks exchanged rows");
      }
    } finally {
      threads.shutdownNow();
      engines.forEach(Engine::close);
    }
  }

  @Test
  void eachRankHoldsItsShareOfTheExpertWeights() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 3);
    DeepSeekWeights weights;
    try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(dir,
        WeightStorage.MAPPED,
        WeightFormatMode.FLOAT32)) {
      weights = DeepSeekWeights.load(checkpoint, DeepSeekConfig.parse(checkpoint.config(),
          "config.json"), false);
    }
    DeepSeekConfig c = weights.config();
    long all = weights.routedExpertBytes();
    assertEquals(all, new ExpertShard(weights, new ExpertPlacement(c.routedExperts(), 1,
        c.routedExperts()), 0, null, null).weightBytes());
    // 2 MoE layers x 16 experts x 3 matrices of 64 x 32 floats
    assertEquals(2L * 16 * 3 * 64 * 32 * Float.BYTES, all);
    for (int rank = 0; rank < 4; rank++) {
      ExpertShard shard = new ExpertShard(weights, new ExpertPlacement(c.routedExperts(), 4,
          c.routedExperts()), rank, null, null);
      assertEquals(all / 4, shard.weightBytes(), "rank " + rank);
    }
  }

  @Test
  void aClosedRankFailsTheOthersStepsInsteadOfHangingThem() throws Exception {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 5);
    List<Engine> engines = Engine.openRanks(options().expertParallel(2), 2);
    try {
      engines.get(1).close();
      Engine survivor = engines.get(0);
      Sequence sequence = survivor.allocate(PROMPTS[0]);
      assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
        ExpertExchangeException failure = assertThrows(ExpertExchangeException.class,
            () -> survivor.step(List.of(sequence)));
        assertTrue(failure.getMessage().contains("closed"), failure.getMessage());
      });
      survivor.release(sequence);
      assertEquals(0, survivor.kvStats().usedBlocks());
    } finally {
      engines.forEach(Engine::close);
    }
  }

  @Test
  void theRanksMustDivideIntoGroups() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 5);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Engine.openRanks(options().expertParallel(2), 3));
    assertTrue(e.getMessage().contains("multiple of 2 ranks"), e.getMessage());
  }

  /** Greedy decoding of {@code prompt}, alone: the logits of each step. */
  static float[][] decode(Engine engine, int[] prompt) {
    float[][] logits = new float[STEPS][];
    Sequence sequence = engine.allocate(prompt);
    for (int step = 0; step < STEPS; step++) {
      engine.step(List.of(sequence));
      logits[step] = sequence.logits().clone();
      engine.append(sequence, Sampler.argmax(sequence.logits()));
    }
    engine.release(sequence);
    return logits;
  }

  /**
   * Rank {@code rank} of {@code ranks} decoding its prompts one after another, stepping as many
   * times as the rank with the most prompts, empty once its own are done.
   */
  static List<float[][]> decodeInLockstep(Engine engine, int rank, int ranks) {
    int rounds = (PROMPTS.length + ranks - 1) / ranks * STEPS;
    List<float[][]> outputs = new ArrayList<>();
    Sequence sequence = null;
    int step = 0;
    for (int round = 0; round < rounds; round++) {
      int prompt = rank + outputs.size() * ranks;
      if (sequence == null && step == 0 && prompt < PROMPTS.length) {
        sequence = engine.allocate(PROMPTS[prompt]);
        outputs.add(new float[STEPS][]);
      }
      engine.step(sequence == null ? List.of() : List.of(sequence));
      if (sequence != null) {
        outputs.get(outputs.size() - 1)[step] = sequence.logits().clone();
        engine.append(sequence, Sampler.argmax(sequence.logits()));
        if (++step == STEPS) {
          engine.release(sequence);
          sequence = null;
          step = 0;
        }
      }
    }
    return outputs;
  }
}
