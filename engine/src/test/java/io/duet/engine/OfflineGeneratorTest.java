package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The offline generator admits a prompt only when its whole generation's blocks can be
 * reserved, tells an observer what happens in order, and frees every block however it ends.
 */
class OfflineGeneratorTest {

  /** Four blocks of 16 tokens; a 16-token prompt with 17 tokens to generate reserves two. */
  private static final SamplingParams PARAMS = SamplingParams.greedy(17).withIgnoreEos(true);

  private static List<int[]> prompts(int count, int length) {
    List<int[]> prompts = new ArrayList<>();
    for (int p = 0; p < count; p++) {
      int[] prompt = new int[length];
      prompt[0] = Engines.BOS;
      for (int i = 1; i < length; i++) {
        prompt[i] = 10 + 50 * p + i;
      }
      prompts.add(prompt);
    }
    return prompts;
  }

  private static Engine fourBlocks() {
    return Engines.open(Engines.aidreamsOptions().kvBlocks(4));
  }

  @Test
  void aPromptWaitsForItsReservationAndThenDecodesAsAlone() {
    try (Engine engine = fourBlocks(); Engine solo = Engines.aidreams()) {
      List<int[]> prompts = prompts(3, engine.options().blockSize());
      List<String> events = new ArrayList<>();
      OfflineGenerator.Observer observer = new OfflineGenerator.Observer() {
        @Override
        public void onAdmit(int index) {
          events.add("admit " + index);
        }

        @Override
        public void onToken(int index, Generation.Delta delta) {
          if (delta.finish() != null) {
            events.add("finish " + index);
          }
        }
      };

      List<OfflineGenerator.Completion> completions =
          new OfflineGenerator(engine, 3).generateAll(prompts, PARAMS, observer);

      // three slots, but blocks for two generations only: the third waits for a finish
      assertEquals(List.of("admit 0", "admit 1", "finish 0", "finish 1", "admit 2", "finish 2"),
          events);
      for (int i = 0; i < prompts.size(); i++) {
        Generation alone = Engines.generateAlone(solo, prompts.get(i), PARAMS);
        solo.release(alone.sequence());
        assertArrayEquals(alone.outputTokens(), completions.get(i).outputTokens(), "prompt " + i);
        assertEquals(FinishReason.LENGTH, completions.get(i).finishReason());
      }
      assertEquals(0, engine.kvStats().usedBlocks());
    }
  }

  @Test
  void aPromptThatCanNeverFitIsRefused() {
    try (Engine engine = fourBlocks()) {
      SamplingParams tooLong = SamplingParams.greedy(80).withIgnoreEos(true);
      assertThrows(KvCacheFullException.class, () -> new OfflineGenerator(engine, 2)
          .generateAll(prompts(1, engine.options().blockSize()), tooLong));
      assertEquals(0, engine.kvStats().usedBlocks());
    }
  }

  @Test
  void aRunCutShortFreesTheBlocksOfEveryAdmittedPrompt() {
    try (Engine engine = Engines.aidreams()) {
      RuntimeException stop = new IllegalStateException("observer gives up");
      OfflineGenerator.Observer observer = new OfflineGenerator.Observer() {
        @Override
        public void onToken(int index, Generation.Delta delta) {
          if (index == 1) {
            throw stop;
          }
        }
      };
      RuntimeException thrown = assertThrows(RuntimeException.class,
          () -> new OfflineGenerator(engine, 3).generateAll(prompts(3, 20), PARAMS, observer));
      assertSame(stop, thrown);
      assertEquals(0, engine.kvStats().usedBlocks());
    }
  }
}
