package io.duet.engine.llama;

import io.duet.engine.KvComponent;
import io.duet.engine.ModelInfo;
import io.duet.engine.Tokenizer;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.LoadedModel;
import java.nio.file.Path;
import java.util.List;

/** A llama2.c checkpoint opened by {@link Llama2cArchitecture}. */
final class LlamaModel implements LoadedModel {

  /** llama2.c's sentencepiece vocabulary: BOS 1, EOS 2. */
  static final int BOS = 1;
  static final int EOS = 2;

  private final LlamaWeights weights;
  private final Llama2cTokenizer tokenizer;
  private final ModelInfo info;

  LlamaModel(LlamaWeights weights, Llama2cTokenizer tokenizer) {
    this.weights = weights;
    this.tokenizer = tokenizer;
    LlamaConfig c = weights.config();
    // llama2.c models end a text with BOS (run.c stops on it) as often as with EOS.
    this.info = new ModelInfo(Llama2cArchitecture.NAME, c.vocabSize(), c.seqLen(), BOS,
        List.of(BOS, EOS), "llama2", "dim=" + c.dim() + " hidden=" + c.hiddenDim() + " layers="
            + c.layers() + " heads=" + c.heads() + " kv_heads=" + c.kvHeads() + " vocab="
            + c.vocabSize() + " seq_len=" + c.seqLen(), 0);
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
    return weights.path().getFileName() + " (" + Llama2cArchitecture.NAME + " " + info.shape()
        + ")";
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
