package io.duet.engine.llama;

import io.duet.engine.KvComponent;
import io.duet.engine.ModelInfo;
import io.duet.engine.Tokenizer;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.LoadedModel;
import java.nio.file.Path;
import java.util.List;

/**
 * A Llama-architecture model opened by {@link Llama2cArchitecture} or
 * {@link HfLlamaArchitecture}: one forward pass, whatever file the weights came from.
 */
final class LlamaModel implements LoadedModel {

  private final LlamaWeights weights;
  private final Tokenizer tokenizer;
  private final ModelInfo info;

  /**
   * @param tokenizer null to run by token ids
   * @param architecture the name of the architecture that opened it
   */
  LlamaModel(LlamaWeights weights, Tokenizer tokenizer, String architecture, int bos,
      List<Integer> endTokens, String chatTemplate) {
    this.weights = weights;
    this.tokenizer = tokenizer;
    LlamaConfig c = weights.config();
    this.info = new ModelInfo(architecture, c.vocabSize(), c.seqLen(), bos, endTokens,
        chatTemplate, "dim=" + c.dim() + " hidden=" + c.hiddenDim() + " layers=" + c.layers()
            + " heads=" + c.heads() + " kv_heads=" + c.kvHeads() + " vocab=" + c.vocabSize()
            + " seq_len=" + c.seqLen(), 0);
  }

  @Override
  public List<Path> files() {
    return List.of(weights.path());
  }

  @Override
  public ModelInfo info() {
    return info;
  }

  @Override
  public int kvLayers() {
    return weights.config().layers();
  }

  /** Keys, then values: one run per KV head, so attention reads one head's keys in a row. */
  @Override
  public List<KvComponent> kvComponents() {
    LlamaConfig c = weights.config();
    return List.of(new KvComponent("k", KvComponent.F32, c.kvDim(), c.kvHeads()),
        new KvComponent("v", KvComponent.F32, c.kvDim(), c.kvHeads()));
  }

  @Override
  public String contentHash() {
    return weights.contentHash();
  }

  @Override
  public Tokenizer tokenizer() {
    return tokenizer;
  }

  @Override
  public String description() {
    return weights.path().getFileName() + " (" + info.architecture() + " " + info.shape() + ")";
  }

  @Override
  public String weightsDescription() {
    return weights.storageDescription();
  }

  @Override
  public ForwardPass forwardPass(ForwardResources resources) {
    return new LlamaForwardPass(weights, resources);
  }

  LlamaWeights weights() {
    return weights;
  }
}
