package io.duet.engine.deepseek;

import io.duet.engine.KvComponent;
import io.duet.engine.ModelInfo;
import io.duet.engine.Tokenizer;
import io.duet.engine.spi.ContentHash;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.LoadedModel;
import java.nio.file.Path;
import java.util.List;

/** A DeepSeek-V3 checkpoint opened by {@link DeepSeekV3Architecture}. */
final class DeepSeekModel implements LoadedModel {

  /** The chat template of DeepSeek-V3, for a checkpoint whose tokenizer names none. */
  static final String CHAT_TEMPLATE = "deepseek-v3";

  private final Path directory;
  private final List<Path> files;
  private final DeepSeekWeights weights;
  private final Tokenizer tokenizer;
  private final ModelInfo info;
  private final String weightsDescription;
  private volatile String contentHash;

  /**
   * @param files the checkpoint's files that its content hash covers (config and tensors)
   * @param tokenizer null for a model run by token ids
   */
  DeepSeekModel(Path directory, List<Path> files, DeepSeekWeights weights, Tokenizer tokenizer,
      ModelInfo info, String weightsDescription) {
    this.directory = directory;
    this.files = List.copyOf(files);
    this.weights = weights;
    this.tokenizer = tokenizer;
    this.info = info;
    this.weightsDescription = weightsDescription;
  }

  @Override
  public ModelInfo info() {
    return info;
  }

  @Override
  public int kvLayers() {
    return weights.blocks();
  }

  @Override
  public boolean drafts() {
    return weights.nextToken() != null;
  }

  /**
   * The normalized latent and the rotated shared rotary key: all that multi-head latent
   * attention needs of a past token, and all that a KV transfer moves.
   */
  @Override
  public List<KvComponent> kvComponents() {
    DeepSeekConfig c = weights.config();
    return List.of(new KvComponent("latent", KvComponent.F32, c.kvLoraRank(), 1),
        new KvComponent("rope_key", KvComponent.F32, c.qkRopeHeadDim(), 1));
  }

  @Override
  public List<Path> files() {
    return files;
  }

  @Override
  public String contentHash() {
    String hash = contentHash;
    if (hash == null) {
      synchronized (this) {
        if (contentHash == null) {
          contentHash = ContentHash.sha256(files);
        }
        hash = contentHash;
      }
    }
    return hash;
  }

  @Override
  public Tokenizer tokenizer() {
    return tokenizer;
  }

  @Override
  public String description() {
    return directory.getFileName() + " (" + DeepSeekV3Architecture.NAME + " " + info.shape()
        + ")";
  }

  @Override
  public String weightsDescription() {
    return weightsDescription;
  }

  @Override
  public ForwardPass forwardPass(ForwardResources resources) {
    return new DeepSeekForwardPass(weights, resources);
  }
}
