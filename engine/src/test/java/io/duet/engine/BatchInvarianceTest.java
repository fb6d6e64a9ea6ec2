package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** A sequence decodes to the same tokens, and the same logit bits, alone or in a batch. */
class BatchInvarianceTest {

  private static final List<String> PROMPTS = List.of("Once upon a time", "The robot",
      "In the quiet lab, a", "Hello world", "Pixels dream of", "A kaleidoscope",
      "Whispers of data", "The network hums");

  @Test
  void greedyTokensAreTheSameAloneAndInABatchOfEight() {
    try (Engine solo = Engines.aidreams(); Engine batched = Engines.aidreams()) {
      List<int[]> prompts = new ArrayList<>();
      for (String text : PROMPTS) {
        prompts.add(solo.tokenizer().encode(text, true));
      }
      SamplingParams params = SamplingParams.greedy(80).withIgnoreEos(true);
      List<OfflineGenerator.Completion> together =
          new OfflineGenerator(batched, 8).generateAll(prompts, params);
      for (int i = 0; i < prompts.size(); i++) {
        int[] alone = new OfflineGenerator(solo, 1).generate(prompts.get(i), params).outputTokens();
        assertEquals(80, alone.length);
        assertArrayEquals(alone, together.get(i).outputTokens(), "prompt " + PROMPTS.get(i));
      }
    }
  }

  @Test
  void logitsAreBitIdenticalWithGroupedQueryAttention() {
    try (Engine solo = Engines.stories(); Engine batched = Engines.stories()) {
      Random random = new Random(7);
      List<int[]> prompts = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        int[] prompt = new int[5 + 9 * i];
        prompt[0] = Engines.BOS;
        for (int j = 1; j < prompt.length; j++) {
          prompt[j] = 3 + random.nextInt(509);
        }
        prompts.add(prompt);
      }
      List<Sequence> batch = new ArrayList<>();
      for (int[] prompt : prompts) {
        batch.add(batched.allocate(prompt));
      }
      for (int step = 0; step < 20; step++) {
        batched.step(batch);
        for (int i = 0; i < prompts.size(); i++) {
          Sequence alone = solo.allocate(batch.get(i).tokens());
          solo.step(List.of(alone));
          assertArrayEquals(bits(alone.logits()), bits(batch.get(i).logits()),
              "sequence " + i + " at step " + step);
          solo.release(alone);
          batched.append(batch.get(i), Sampler.argmax(batch.get(i).logits()));
        }
      }
    }
  }

  private static int[] bits(float[] values) {
    int[] bits = new int[values.length];
    for (int i = 0; i < values.length; i++) {
      bits[i] = Float.floatToRawIntBits(values[i]);
    }
    return bits;
  }
}
