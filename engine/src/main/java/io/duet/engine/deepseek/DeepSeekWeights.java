package io.duet.engine.deepseek;

import io.duet.engine.compute.WeightMatrix;
import io.duet.engine.safetensors.SafetensorsCheckpoint;
import java.io.IOException;

/**
 * The weights of a DeepSeek-V3 checkpoint under their Hugging Face names, as the forward pass
 * uses them. Norm vectors and the attention's up-projection ({@code kv_b_proj}, rearranged for
 * the absorbed form) are on the heap; every other matrix is a {@link WeightMatrix}. The
 * multi-token prediction (MTP) module ({@code model.layers.<num_hidden_layers>.*}) is read only
 * when the engine drafts with it.
 */
final class DeepSeekWeights {

  /**
   * One layer's multi-head latent attention.
   *
   * @param queryDown {@code q_a_proj}, or null when {@code q_lora_rank} is null
   * @param queryUp {@code q_b_proj}, or {@code q_proj} without a compressed query
   * @param keyValueDown {@code kv_a_proj_with_mqa}: the latent, then the shared rotary key
   * @param keyUpTransposed per head, {@code kv_b_proj}'s key rows transposed:
   *     {@code [heads][kv_lora_rank][qk_nope_head_dim]}, which turns a query head into the
   *     latent space
   * @param valueUp per head, {@code kv_b_proj}'s value rows: {@code [heads][v_head_dim]
   *     [kv_lora_rank]}, which turns an attention-weighted latent into the head's output
   */
  record Attention(float[] inputNorm, WeightMatrix queryDown, float[] queryNorm,
      WeightMatrix queryUp, WeightMatrix keyValueDown, float[] latentNorm,
      float[] keyUpTransposed, float[] valueUp, WeightMatrix output) {
  }

  /** A SwiGLU feed-forward: {@code down(silu(gate(x)) * up(x))}. */
  record FeedForward(WeightMatrix gate, WeightMatrix up, WeightMatrix down) {
    int hidden() {
      return gate.rows();
    }

    /** The bytes its three matrices hold. */
    long bytes() {
      return gate.bytes() + up.bytes() + down.bytes();
    }
  }

  /**
   * A DeepSeekMoE layer: the router's matrix and its score correction (which biases the choice
   * of experts, not their weights), the routed experts, and the shared ones as one feed-forward
   * (null without shared experts).
   */
  record Experts(WeightMatrix router, float[] correctionBias, FeedForward[] routed,
      FeedForward shared) {
  }

  /** One block: attention, then either a dense feed-forward or experts (the other is null). */
  record Layer(Attention attention, float[] feedForwardNorm, FeedForward dense,
      Experts experts) {
  }

  /**
   * The multi-token prediction module: from the main model's hidden state of position t (before
   * its final norm) and the embedding of token t+1, one decoder block at position t whose output
   * predicts token t+2.
   *
   * @param embedding its {@code embed_tokens} (the main model's in DeepSeek-V3's release)
   * @param embeddingNorm {@code enorm}, applied to the embedding of token t+1
   * @param hiddenNorm {@code hnorm}, applied to the main model's hidden state
   * @param projection {@code eh_proj}: hidden x (2 hidden), over the two normalized halves
   *     concatenated, embedding first
   * @param block the decoder block, shaped as layer {@code num_hidden_layers} would be
   * @param headNorm {@code shared_head.norm}
   * @param head {@code shared_head.head}
   */
  record NextToken(WeightMatrix embedding, float[] embeddingNorm, float[] hiddenNorm,
      WeightMatrix projection, Layer block, float[] headNorm, WeightMatrix head) {
  }

  private final DeepSeekConfig config;
  private final WeightMatrix embedding;
  private final Layer[] layers;
  private final float[] finalNorm;
  private final WeightMatrix classifier;
  private final NextToken nextToken;

  private DeepSeekWeights(DeepSeekConfig config, WeightMatrix embedding, Layer[] layers,
      float[] finalNorm, WeightMatrix classifier, NextToken nextToken) {
    this.config = config;
    this.embedding = embedding;
    this.layers = layers;
    this.finalNorm = finalNorm;
    this.classifier = classifier;
    this.nextToken = nextToken;
  }

  /**
   * Reads every tensor the model runs on, checking each one's shape; with {@code nextToken},
   * also the MTP module (the config must declare one).
   */
  static DeepSeekWeights load(SafetensorsCheckpoint checkpoint, DeepSeekConfig c,
      boolean nextToken) throws IOException {
    int dim = c.hiddenSize();
    Layer[] layers = new Layer[c.layers()];
    for (int l = 0; l < layers.length; l++) {
      layers[l] = layer(checkpoint, c, l);
    }
    return new DeepSeekWeights(c,
        checkpoint.matrix("model.embed_tokens.weight", c.vocabSize(), dim), layers,
        checkpoint.vector("model.norm.weight", dim),
        checkpoint.matrix("lm_head.weight", c.vocabSize(), dim),
        nextToken ? nextToken(checkpoint, c) : null);
  }

  /** Decoder block {@code l}: {@code model.layers.<l>.*}. */
  private static Layer layer(SafetensorsCheckpoint checkpoint, DeepSeekConfig c, int l)
      throws IOException {
    int dim = c.hiddenSize();
    String prefix = "model.layers." + l + ".";
    Attention attention = attention(checkpoint, c, prefix);
    float[] ffnNorm = checkpoint.vector(prefix + "post_attention_layernorm.weight", dim);
    if (c.isMoeLayer(l)) {
      return new Layer(attention, ffnNorm, null, experts(checkpoint, c, prefix + "mlp."));
    }
    return new Layer(attention, ffnNorm,
        feedForward(checkpoint, prefix + "mlp.", dim, c.intermediateSize()), null);
  }

  private static NextToken nextToken(SafetensorsCheckpoint checkpoint, DeepSeekConfig c)
      throws IOException {
    int dim = c.hiddenSize();
    String prefix = "model.layers." + c.layers() + ".";
    return new NextToken(
        checkpoint.matrix(prefix + "embed_tokens.weight", c.vocabSize(), dim),
        checkpoint.vector(prefix + "enorm.weight", dim),
        checkpoint.vector(prefix + "hnorm.weight", dim),
        checkpoint.matrix(prefix + "eh_proj.weight", dim, 2 * dim),
        layer(checkpoint, c, c.layers()),
        checkpoint.vector(prefix + "shared_head.norm.weight", dim),
        checkpoint.matrix(prefix + "shared_head.head.weight", c.vocabSize(), dim));
  }

  private static Attention attention(SafetensorsCheckpoint checkpoint, DeepSeekConfig c,
      String prefix) throws IOException {
    int dim = c.hiddenSize();
    int heads = c.heads();
    int rank = c.kvLoraRank();
    String a = prefix + "self_attn.";
    WeightMatrix queryDown = null;
    float[] queryNorm = null;
    WeightMatrix queryUp;
    if (c.qLoraRank() > 0) {
      queryDown = checkpoint.matrix(a + "q_a_proj.weight", c.qLoraRank(), dim);
      queryNorm = checkpoint.vector(a + "q_a_layernorm.weight", c.qLoraRank());
      queryUp = checkpoint.matrix(a + "q_b_proj.weight", heads * c.qkHeadDim(), c.qLoraRank());
    } else {
      queryUp = checkpoint.matrix(a + "q_proj.weight", heads * c.qkHeadDim(), dim);
    }
    // kv_b_proj: per head, qk_nope_head_dim key rows then v_head_dim value rows, each over the
    // latent. The absorbed form needs the key rows transposed.
    int nope = c.qkNopeHeadDim();
    int v = c.vHeadDim();
    float[] up = checkpoint.floats(a + "kv_b_proj.weight", heads * (nope + v), rank);
    float[] keyUpTransposed = new float[heads * rank * nope];
    float[] valueUp = new float[heads * v * rank];
    for (int h = 0; h < heads; h++) {
      int headRows = h * (nope + v);
      for (int d = 0; d < nope; d++) {
        for (int r = 0; r < rank; r++) {
          keyUpTransposed[(h * rank + r) * nope + d] = up[(headRows + d) * rank + r];
        }
      }
      System.arraycopy(up, (headRows + nope) * rank, valueUp, h * v * rank, v * rank);
    }
    return new Attention(checkpoint.vector(prefix + "input_layernorm.weight", dim), queryDown,
        queryNorm, queryUp,
        checkpoint.matrix(a + "kv_a_proj_with_mqa.weight", rank + c.qkRopeHeadDim(), dim),
        checkpoint.vector(a + "kv_a_layernorm.weight", rank), keyUpTransposed, valueUp,
        checkpoint.matrix(a + "o_proj.weight", dim, heads * v));
  }

  private static Experts experts(SafetensorsCheckpoint checkpoint, DeepSeekConfig c,
      String prefix) throws IOException {
    int dim = c.hiddenSize();
    FeedForward[] routed = new FeedForward[c.routedExperts()];
    for (int e = 0; e < routed.length; e++) {
      routed[e] = feedForward(checkpoint, prefix + "experts." + e + ".", dim,
          c.moeIntermediateSize());
    }
    FeedForward shared = c.sharedExperts() == 0 ? null : feedForward(checkpoint,
        prefix + "shared_experts.", dim, c.sharedExperts() * c.moeIntermediateSize());
    return new Experts(checkpoint.matrix(prefix + "gate.weight", c.routedExperts(), dim),
        checkpoint.vector(prefix + "gate.e_score_correction_bias", c.routedExperts()), routed,
        shared);
  }

  private static FeedForward feedForward(SafetensorsCheckpoint checkpoint, String prefix,
      int dim, int hidden) throws IOException {
    return new FeedForward(checkpoint.matrix(prefix + "gate_proj.weight", hidden, dim),
        checkpoint.matrix(prefix + "up_proj.weight", hidden, dim),
        checkpoint.matrix(prefix + "down_proj.weight", dim, hidden));
  }

  /** The bytes of every routed expert's weights, over all layers. */
  long routedExpertBytes() {
    long bytes = 0;
    for (int l = 0; l < blocks(); l++) {
      Layer layer = layer(l);
      if (layer.experts() != null) {
        for (FeedForward expert : layer.experts().routed()) {
          bytes += expert.bytes();
        }
      }
    }
    return bytes;
  }

  DeepSeekConfig config() {
    return config;
  }

  WeightMatrix embedding() {
    return embedding;
  }

  /** Decoder block {@code index}; index {@code layers} is the MTP module's, when loaded. */
  Layer layer(int index) {
    return index == layers.length ? nextToken.block() : layers[index];
  }

  /** The decoder blocks: the main layers, and the MTP module's when it is loaded. */
  int blocks() {
    return layers.length + (nextToken == null ? 0 : 1);
  }

  /** The MTP module, or null when it was not loaded. */
  NextToken nextToken() {
    return nextToken;
  }

  float[] finalNorm() {
    return finalNorm;
  }

  WeightMatrix classifier() {
    return classifier;
  }
}
