package io.duet.engine.deepseek;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Engines;
import io.duet.engine.KvLayout;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Storage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The engine runs DeepSeek-V3 checkpoints (written by the test as real safetensors) as an
 * independent naive implementation does: logits within tolerance and the same greedy tokens, the
 * engine's absorbed attention against the reference's full per-head keys and values.
 */
class DeepSeekV3Test {

  private static final int[] PROMPT = {0, 17, 42, 99, 5, 63, 8, 120, 31, 77, 2, 54, 19, 88, 3,
      101, 45, 66, 12};
  private static final int GENERATED = 12;

  @TempDir
  Path dir;

  static EngineOptions options(Path model) {
    return new EngineOptions().modelPath(model).kvBlocks(64).blockSize(8).maxSequences(4)
        .maxBatchTokens(64).threads(2);
  }

  @ParameterizedTest(name = "{0}, q_lora {1}, sharded {2}")
  @CsvSource({"BF16, true, false", "FP8, true, true", "F32, false, false", "BF16, false, true"})
  void absorbedAttentionGivesTheNaiveLogitsAndGreedyTokens(Storage storage, boolean qLora, boolean sharded)
      throws IOException {
    NaiveDeepSeek reference = TinyDeepSeek.write(dir, storage, qLora, sharded, 7).reference();
    try (Engine engine = Engines.open(options(dir))) {
      assertEquals(DeepSeekV3Architecture.NAME, engine.info().architecture());
      assertNull(engine.tokenizer(), "no tokenizer.json: a model run by token ids");
      Sequence sequence = engine.allocate(PROMPT);
      List<Integer> tokens = new ArrayList<>();
      for (int token : PROMPT) {
        tokens.add(token);
      }
      double worst = 0;
      for (int step = 0; step < GENERATED; step++) {
        engine.step(List.of(sequence));
        double[][] expected = reference.logits(tokens.stream().mapToInt(i -> i).toArray());
        double[] want = expected[expected.length - 1];
        float[] got = sequence.logits();
        worst = Math.max(worst, assertClose(want, got, "step " + step));
        int next = Sampler.argmax(got);
        assertEquals(NaiveDeepSeek.argmax(want), next, "greedy token at step " + step);
        tokens.add(next);
        engine.append(sequence, next);
      }
      engine.release(sequence);
      assertTrue(worst > 0, "the logits are computed, not copied");
    }
  }

  @Test
  void thePrefillOfAPromptEqualsTheReferenceAtEveryPosition() throws IOException {
    double[][] expected = TinyDeepSeek.write(dir, Storage.BF16, true, false, 11).reference()
        .logits(PROMPT);
    try (Engine engine = Engines.open(options(dir))) {
      // Token by token, so that each position's logits come out of the absorbed attention over
      // the positions cached before it.
      Sequence sequence = engine.allocate(new int[] {PROMPT[0]});
      for (int i = 0; i < PROMPT.length; i++) {
        engine.step(List.of(sequence));
        assertClose(expected[i], sequence.logits(), "position " + i);
        if (i + 1 < PROMPT.length) {
          engine.append(sequence, PROMPT[i + 1]);
        }
      }
      engine.release(sequence);
    }
  }

  @Test
  void theCacheHoldsTheLatentAndTheRopeKeyOnly() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 3);
    try (Engine engine = Engines.open(options(dir))) {
      KvLayout layout = engine.layout();
      assertTrue(layout.fingerprint().endsWith("/L3/latent:f32[1x16],rope_key:f32[1x8]/B8"),
          layout.fingerprint());
      assertEquals(3L * (16 + 8) * Float.BYTES, layout.bytesPerToken());
    }
  }

  @Test
  void prefillInOneEngineAndDecodeInAnotherGivesTheSameTokens() throws IOException {
    TinyDeepSeek.write(dir, Storage.FP8, true, false, 5);
    SamplingParams params = SamplingParams.greedy(20).withIgnoreEos(true);
    try (Engine a = Engines.open(options(dir)); Engine b = Engines.open(options(dir))) {
      int[] expected = new OfflineGenerator(a, 1).generate(PROMPT, params).outputTokens();

      Sequence prefilled = a.allocate(PROMPT);
      a.step(List.of(prefilled));
      int token = Sampler.argmax(prefilled.logits());
      Sequence decoding = Engines.transfer(a, prefilled, b);
      a.release(prefilled);
      int[] output = new int[params.maxTokens()];
      for (int i = 0; i < output.length; i++) {
        output[i] = token;
        b.append(decoding, token);
        b.step(List.of(decoding));
        token = Sampler.argmax(decoding.logits());
      }
      b.release(decoding);
      assertArrayEquals(expected, output);
      assertEquals(0, b.kvStats().usedBlocks());
    }
  }

  @Test
  void aSequenceDecodesTheSameAloneAndInABatch() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 9);
    SamplingParams params = SamplingParams.greedy(16).withIgnoreEos(true);
    List<int[]> prompts = List.of(PROMPT, new int[] {0, 5, 6, 7}, new int[] {0, 99, 98, 97, 96,
        95, 94, 93, 92, 91, 90});
    try (Engine engine = Engines.open(options(dir))) {
      List<OfflineGenerator.Completion> batched =
          new OfflineGenerator(engine, 3).generateAll(prompts, params);
      for (int i = 0; i < prompts.size(); i++) {
        int[] alone = Engines.generateAlone(engine, prompts.get(i), params).outputTokens();
        assertArrayEquals(alone, batched.get(i).outputTokens(), "prompt " + i);
      }
    }
  }

  /** Fails unless every logit is within 1e-4 (relative to the logits' scale); returns the worst. */
  private static double assertClose(double[] expected, float[] actual, String where) {
    double scale = 0;
    for (double e : expected) {
      scale = Math.max(scale, Math.abs(e));
    }
    double worst = 0;
    for (int i = 0; i < expected.length; i++) {
      worst = Math.max(worst, Math.abs(expected[i] - actual[i]) / scale);
    }
    assertTrue(worst < 1e-4, where + ": logits differ by " + worst + " of their scale " + scale);
    return worst;
  }
}
