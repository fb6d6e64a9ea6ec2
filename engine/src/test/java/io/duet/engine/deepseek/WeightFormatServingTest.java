package io.duet.engine.deepseek;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.Engines;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import io.duet.engine.WeightFormatMode;
import io.duet.engine.WeightStorage;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Storage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A DeepSeek-V3 checkpoint served with its BF16 or FP8 weights kept as stored decodes to the
 * tokens, and the logits, of the same checkpoint converted to float32 at load: the kernels widen
 * each weight to exactly its dequantized value. FP8 blocks of DeepSeek-V3's 128 (larger than
 * every matrix here), of 16 and of 24 (cutting rows and columns short) are read in place; blocks
 * of 12 columns, which do not span whole vectors, fall back to float32.
 */
class WeightFormatServingTest {

  private static final List<int[]> PROMPTS = List.of(new int[] {0, 17, 42, 99, 5, 63, 8},
      new int[] {0, 5, 6}, new int[] {0, 120, 31, 77, 2, 54, 19, 88, 3, 101, 45});

  @TempDir
  Path dir;

  @ParameterizedTest(name = "{0}, FP8 block {1}, held in place: {2}")
  @CsvSource({"FP8, 128, true", "FP8, 16, true", "FP8, 24, true", "FP8, 12, false",
      "BF16, 16, true"})
  void nativeWeightsDecodeToTheTokensAndLogitsOfFloat32Ones(Storage storage, int fp8Block,
      boolean inPlace) throws IOException {
    RandomDeepSeekCheckpoint.write(dir, TinyDeepSeek.shape(true), storage, fp8Block, false, 13);
    SamplingParams params = SamplingParams.greedy(12).withIgnoreEos(true);
    try (Engine compact = Engines.open(DeepSeekV3Test.options(dir)
            .weightFormat(WeightFormatMode.NATIVE));
        Engine float32 = Engines.open(DeepSeekV3Test.options(dir)
            .weightFormat(WeightFormatMode.FLOAT32))) {
      String kept = storage == Storage.FP8 ? "FP8_E4M3" : "BF16";
      assertEquals(inPlace, compact.description().weights().contains("MB " + kept),
          compact.description().weights());
      assertFalse(float32.description().weights().contains("MB " + kept),
          float32.description().weights());

      List<OfflineGenerator.Completion> expected =
          new OfflineGenerator(float32, PROMPTS.size()).generateAll(PROMPTS, params);
      List<OfflineGenerator.Completion> actual =
          new OfflineGenerator(compact, PROMPTS.size()).generateAll(PROMPTS, params);
      for (int i = 0; i < PROMPTS.size(); i++) {
        assertArrayEquals(expected.get(i).outputTokens(), actual.get(i).outputTokens(),
            "prompt " + i);
      }

      Sequence a = compact.allocate(PROMPTS.get(0));
      Sequence b = float32.allocate(PROMPTS.get(0));
      compact.step(List.of(a));
      float32.step(List.of(b));
      assertArrayEquals(b.logits(), a.logits(), "the prompt's logits, bit for bit");
      assertTrue(a.logits()[0] != 0 || a.logits()[1] != 0, "logits computed");
      compact.release(a);
      float32.release(b);
    }
  }

  @Test
  void nativeWeightsCopiedOntoHugePagesGiveTheMappedOnesLogits() throws IOException {
    RandomDeepSeekCheckpoint.write(dir, TinyDeepSeek.shape(true), Storage.FP8, 16, false, 17);
    try (Engine mapped = Engines.open(DeepSeekV3Test.options(dir)
            .weightFormat(WeightFormatMode.NATIVE));
        Engine copied = Engines.open(DeepSeekV3Test.options(dir)
            .weightFormat(WeightFormatMode.NATIVE).weightStorage(WeightStorage.HUGE_PAGES))) {
      assertTrue(mapped.description().weights().startsWith("mapped from the files"),
          mapped.description().weights());
      assertTrue(copied.description().weights().contains("copied")
          && copied.description().weights().contains("FP8_E4M3"),
          copied.description().weights());
      Sequence a = mapped.allocate(PROMPTS.get(2));
      Sequence b = copied.allocate(PROMPTS.get(2));
      mapped.step(List.of(a));
      copied.step(List.of(b));
      assertArrayEquals(a.logits(), b.logits());
      mapped.release(a);
      copied.release(b);
    }
  }
}
