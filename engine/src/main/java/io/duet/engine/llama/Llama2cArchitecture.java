package io.duet.engine.llama;

import io.duet.engine.EngineOptions;
import io.duet.engine.spi.Architecture;
import io.duet.engine.spi.LoadedModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * Llama-architecture models in llama2.c's checkpoint format ({@link Llama2cCheckpoint}), with
 * llama2.c's {@code tokenizer.bin}: RMSNorm, grouped-query attention with RoPE on interleaved
 * pairs, SwiGLU feed-forward, float32 weights; token for token what llama2.c's {@code run.c}
 * computes.
 */
public final class Llama2cArchitecture implements Architecture {

  public static final String NAME = "llama2c";
  /** llama2.c's sentencepiece vocabulary: BOS 1, EOS 2. */
  static final int BOS = 1;
  static final int EOS = 2;

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public boolean recognizes(Path model) {
    return Llama2cCheckpoint.recognizes(model);
  }

  @Override
  public LoadedModel open(EngineOptions options) throws IOException {
    LlamaWeights weights = LlamaWeights.load(options.modelPath(), options.weightStorage());
    Llama2cTokenizer tokenizer = options.tokenizerPath() == null ? null
        : Llama2cTokenizer.load(options.tokenizerPath(), weights.config().vocabSize());
    // llama2.c models end a text with BOS (run.c stops on it) as often as with EOS.
    return new LlamaModel(weights, tokenizer, NAME, BOS, List.of(BOS, EOS), "llama2");
  }
}
