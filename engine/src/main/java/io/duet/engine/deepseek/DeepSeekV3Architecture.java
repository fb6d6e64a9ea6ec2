package io.duet.engine.deepseek;

import io.duet.engine.EngineOptions;
import io.duet.engine.ModelFormatException;
import io.duet.engine.ModelInfo;
import io.duet.engine.safetensors.SafetensorsCheckpoint;
import io.duet.engine.spi.Architecture;
import io.duet.engine.spi.LoadedModel;
import io.duet.engine.tokenizer.HfTokenizer;
import io.duet.engine.tokenizer.SpecialTokens;
import java.io.IOException;
import java.nio.file.Path;

/**
 * DeepSeek-V3 from a Hugging Face checkpoint directory ({@code config.json} with
 * {@code model_type} {@code deepseek_v3}, and safetensors in F32, BF16, F16 or block-scaled
 * FP8): multi-head latent attention with YaRN RoPE, dense then DeepSeekMoE feed-forwards, as
 * HF's {@code modeling_deepseek.py} and DeepSeek's {@code inference/model.py} compute them.
 *
 * <p>The tokenizer is the directory's {@code tokenizer.json} (or the file
 * {@link EngineOptions#tokenizerPath} names). Without one the model loads all the same and runs
 * by token ids: {@code tokenizer()} is null, as for any engine opened without a tokenizer, and
 * BOS and EOS come from {@code config.json}.
 */
public final class DeepSeekV3Architecture implements Architecture {

  public static final String NAME = "deepseek-v3";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public boolean recognizes(Path model) {
    return SafetensorsCheckpoint.hasModelType(model, DeepSeekConfig.MODEL_TYPE);
  }

  @Override
  public LoadedModel open(EngineOptions options) throws IOException {
    Path directory = options.modelPath();
    try (SafetensorsCheckpoint checkpoint =
        SafetensorsCheckpoint.open(directory, options.weightStorage(),
            options.weightFormat())) {
      DeepSeekConfig c = DeepSeekConfig.parse(checkpoint.config(),
          directory.resolve(SafetensorsCheckpoint.CONFIG).toString());
      if (options.mtp()) {
        checkNextTokenModule(c, directory);
      }
      DeepSeekWeights weights = DeepSeekWeights.load(checkpoint, c, options.mtp());
      HfTokenizer tokenizer = HfTokenizer.ofCheckpoint(directory, options.tokenizerPath());
      return new DeepSeekModel(directory, checkpoint.files(), weights, tokenizer,
          info(c, tokenizer), checkpoint.storageDescription());
    }
  }

  /** MTP drafting needs exactly one module: DeepSeek-V3's, which drafts one token a step. */
  private static void checkNextTokenModule(DeepSeekConfig c, Path directory)
      throws ModelFormatException {
    String config = directory.resolve(SafetensorsCheckpoint.CONFIG).toString();
    if (c.nextTokenLayers() == 0) {
      throw new ModelFormatException(config + ": num_nextn_predict_layers is 0, the model has no "
          + "multi-token prediction module to draft with; run it with MTP off");
    }
    if (c.nextTokenLayers() > 1) {
      throw new ModelFormatException(config + ": num_nextn_predict_layers "
          + c.nextTokenLayers() + " is not supported with MTP on (only 1, DeepSeek-V3's)");
    }
  }

  private static ModelInfo info(DeepSeekConfig c, HfTokenizer tokenizer) {
    SpecialTokens tokens = new SpecialTokens(c.bosToken(), c.eosTokens(),
        DeepSeekModel.CHAT_TEMPLATE).withTokenizer(tokenizer);
    String shape = "hidden=" + c.hiddenSize() + " layers=" + c.layers() + " heads=" + c.heads()
        + " q_lora=" + c.qLoraRank() + " kv_lora=" + c.kvLoraRank() + " experts="
        + c.routedExperts() + "x" + c.moeIntermediateSize() + " top" + c.expertsPerToken()
        + " shared=" + c.sharedExperts() + " dense_layers=" + c.firstDenseLayers() + " vocab="
        + c.vocabSize() + (c.yarn() != null ? " yarn x" + c.yarn().factor() : "");
    return new ModelInfo(NAME, c.vocabSize(), c.maxPositions(), tokens.bos(), tokens.ends(),
        tokens.chatTemplate(), shape, c.routedExperts());
  }
}
