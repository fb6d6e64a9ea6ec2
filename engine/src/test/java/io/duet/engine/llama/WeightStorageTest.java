package io.duet.engine.llama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Engines;
import io.duet.engine.Generation;
import io.duet.engine.SamplingParams;
import io.duet.engine.TestFiles;
import io.duet.engine.WeightStorage;
import io.duet.engine.compute.WeightMatrix;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class WeightStorageTest {

  private static final Path MODEL = TestFiles.shared("models/stories260K.bin");

  @Test
  void copiedWeightsEqualTheMappedOnesInEveryTensor() throws IOException {
    LlamaWeights mapped = LlamaWeights.load(MODEL, WeightStorage.MAPPED);
    LlamaWeights copied = LlamaWeights.load(MODEL, WeightStorage.HUGE_PAGES);
    assertEquals("mapped from the file", mapped.storageDescription());
    assertTrue(copied.storageDescription().startsWith("copied to "),
        copied.storageDescription());
    assertSameRows(mapped.tokenEmbedding(), copied.tokenEmbedding());
    assertSameRows(mapped.classifier(), copied.classifier());
    for (int l = 0; l < mapped.config().layers(); l++) {
      LlamaWeights.Layer a = mapped.layer(l);
      LlamaWeights.Layer b = copied.layer(l);
      assertSameRows(a.wq(), b.wq());
      assertSameRows(a.wk(), b.wk());
      assertSameRows(a.wv(), b.wv());
      assertSameRows(a.wo(), b.wo());
      assertSameRows(a.w1(), b.w1());
      assertSameRows(a.w2(), b.w2());
      assertSameRows(a.w3(), b.w3());
      assertArrayEquals(a.attentionNorm(), b.attentionNorm());
      assertArrayEquals(a.ffnNorm(), b.ffnNorm());
    }
  }

  @Test
  void anEngineOnCopiedWeightsGeneratesWhatOneOnMappedWeightsDoes() {
    SamplingParams greedy = new SamplingParams(0f, 0, 1f, 1, 40, List.of(), List.of(), true);
    int[] prompt = {1, 403, 407, 261, 378};
    Generation expected;
    try (Engine engine = Engines.open(new EngineOptions().modelPath(MODEL))) {
      expected = Engines.generateAlone(engine, prompt, greedy);
    }
    try (Engine engine = Engines.open(new EngineOptions().modelPath(MODEL)
        .weightStorage(WeightStorage.HUGE_PAGES))) {
      assertTrue(engine.description().weights().startsWith("copied to "),
          "the engine runs on the copy: " + engine.description());
      Generation actual = Engines.generateAlone(engine, prompt, greedy);
      assertArrayEquals(expected.outputTokens(), actual.outputTokens());
    }
  }

  private static void assertSameRows(WeightMatrix a, WeightMatrix b) {
    assertEquals(a.rows(), b.rows());
    float[] rowA = new float[a.cols()];
    float[] rowB = new float[b.cols()];
    for (int r = 0; r < a.rows(); r++) {
      a.copyRow(r, rowA, 0);
      b.copyRow(r, rowB, 0);
      assertArrayEquals(rowA, rowB, "row " + r);
    }
  }
}
