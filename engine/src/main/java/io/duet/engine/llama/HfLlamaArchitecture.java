package io.duet.engine.llama;

import io.duet.engine.EngineOptions;
import io.duet.engine.safetensors.HfConfigReader;
import io.duet.engine.safetensors.SafetensorsCheckpoint;
import io.duet.engine.spi.Architecture;
import io.duet.engine.spi.LoadedModel;
import io.duet.engine.tokenizer.HfTokenizer;
import io.duet.engine.tokenizer.SpecialTokens;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Llama-architecture models from a Hugging Face checkpoint directory ({@code config.json} with
 * {@code model_type} llama, safetensors in F32, BF16 or F16, one file or shards): the forward
 * pass of {@link Llama2cArchitecture}, with the config's RMSNorm epsilon and RoPE base, and the
 * query and key rows HF permutes for its rotate-half RoPE put back in order at load.
 *
 * <p>The tokenizer is the directory's {@code tokenizer.json} (or the one
 * {@link EngineOptions#tokenizerPath} names); without one the model runs by token ids, BOS and
 * EOS from {@code config.json}.
 */
public final class HfLlamaArchitecture implements Architecture {

  public static final String NAME = "llama";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public boolean recognizes(Path model) {
    return SafetensorsCheckpoint.hasModelType(model, LlamaConfig.HF_MODEL_TYPE);
  }

  @Override
  public LoadedModel open(EngineOptions options) throws IOException {
    Path directory = options.modelPath();
    try (SafetensorsCheckpoint checkpoint =
        SafetensorsCheckpoint.open(directory, options.weightStorage(),
            options.weightFormat())) {
      String source = directory.resolve(SafetensorsCheckpoint.CONFIG).toString();
      LlamaConfig c = LlamaConfig.fromHuggingFace(checkpoint.config(), source);
      LlamaWeights weights = LlamaWeights.fromHuggingFace(checkpoint, c);
      HfTokenizer tokenizer = HfTokenizer.ofCheckpoint(directory, options.tokenizerPath());
      HfConfigReader config = new HfConfigReader(checkpoint.config(), source);
      SpecialTokens tokens = new SpecialTokens(config.natural("bos_token_id", 1),
          config.tokens("eos_token_id"), "plain").withTokenizer(tokenizer);
      return new LlamaModel(weights, tokenizer, NAME, tokens.bos(), tokens.ends(),
          tokens.chatTemplate());
    }
  }
}
