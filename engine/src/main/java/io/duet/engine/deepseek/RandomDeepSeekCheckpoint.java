package io.duet.engine.deepseek;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.duet.engine.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * Writes DeepSeek-V3 checkpoints of random weights in Hugging Face layout (config.json and real
 * safetensors under the released checkpoint's tensor names), for tests and benchmarks: the
 * architecture at any size without downloading one. The config has YaRN scaling with both of
 * its magnitude corrections ({@code mscale} 1, {@code mscale_all_dim} 0.707), so that they are
 * exercised. An FP8 checkpoint stores the projections as DeepSeek-V3 does (e4m3 with float32
 * block scales) and the embeddings, norms, router and head in BF16.
 *
 * <p>Multi-token prediction modules, when the shape has them, come after the main layers as in
 * DeepSeek-V3's release: {@code enorm}, {@code hnorm}, {@code eh_proj}, a decoder block with
 * experts, and {@code embed_tokens} and {@code shared_head.head} equal to the main model's
 * embedding and head. They are drawn after every main tensor, so a seed gives the same main
 * model with or without them.
 *
 * <p>A <em>draftable</em> checkpoint makes its MTP module's drafts mostly right, as a trained
 * module's often are, for benchmarks of speculative decoding: the blocks' output projections
 * ({@code o_proj}, {@code down_proj}) are scaled down so that a token's hidden state stays close
 * to its embedding and the next token is mostly a function of the current one; the module's
 * {@code eh_proj} passes the normalized embedding of the token after through ({@code enorm} 1),
 * and its {@code shared_head.norm} is the final norm, so it predicts what the main model will
 * say after that token.
 */
public final class RandomDeepSeekCheckpoint {

  /** How the weights are stored. */
  public enum Storage { F32, BF16, FP8 }

  /**
   * A model's dimensions, named as in {@code config.json}.
   *
   * @param qLoraRank 0 for a null {@code q_lora_rank}
   * @param nextTokenLayers {@code num_nextn_predict_layers}: MTP modules
   */
  public record Shape(int hidden, int layers, int denseLayers, int heads, int qLoraRank,
      int kvLoraRank, int nopeDim, int ropeDim, int valueDim, int intermediate,
      int moeIntermediate, int routedExperts, int expertsPerToken, int groups, int topkGroups,
      int sharedExperts, int vocab, int maxPositions, int nextTokenLayers) {
  }

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Shape shape;
  private final Storage storage;
  private final int fp8Block;
  private final boolean draftable;
  private final Random random;
  private final Map<String, float[]> weights = new LinkedHashMap<>();

  /** What a draftable checkpoint scales its blocks' output projections by. */
  private static final float DRAFTABLE_OUTPUT_SCALE = 0.02f;

  private RandomDeepSeekCheckpoint(Shape shape, Storage storage, int fp8Block, long seed,
      boolean draftable) {
    this.shape = shape;
    this.storage = storage;
    this.fp8Block = fp8Block;
    this.draftable = draftable;
    this.random = new Random(seed);
  }

  /** The {@code config.json} of a model of {@code shape}. */
  public static ObjectNode config(Shape s, Storage storage, int fp8Block) {
    ObjectNode c = JSON.createObjectNode();
    c.put("model_type", DeepSeekConfig.MODEL_TYPE);
    c.putArray("architectures").add("DeepseekV3ForCausalLM");
    c.put("hidden_size", s.hidden());
    c.put("num_hidden_layers", s.layers());
    c.put("num_attention_heads", s.heads());
    c.put("num_key_value_heads", s.heads());
    if (s.qLoraRank() > 0) {
      c.put("q_lora_rank", s.qLoraRank());
    } else {
      c.putNull("q_lora_rank");
    }
    c.put("kv_lora_rank", s.kvLoraRank());
    c.put("qk_nope_head_dim", s.nopeDim());
    c.put("qk_rope_head_dim", s.ropeDim());
    c.put("v_head_dim", s.valueDim());
    c.put("rope_theta", 10000.0);
    ObjectNode yarn = c.putObject("rope_scaling");
    yarn.put("type", "yarn");
    yarn.put("factor", 4.0);
    yarn.put("original_max_position_embeddings", Math.max(1, s.maxPositions() / 4));
    yarn.put("beta_fast", 32);
    yarn.put("beta_slow", 1);
    yarn.put("mscale", 1.0);
    yarn.put("mscale_all_dim", 0.707);
    c.put("first_k_dense_replace", s.denseLayers());
    c.put("moe_layer_freq", 1);
    c.put("intermediate_size", s.intermediate());
    c.put("moe_intermediate_size", s.moeIntermediate());
    c.put("n_shared_experts", s.sharedExperts());
    c.put("n_routed_experts", s.routedExperts());
    c.put("num_experts_per_tok", s.expertsPerToken());
    c.put("n_group", s.groups());
    c.put("topk_group", s.topkGroups());
    c.put("norm_topk_prob", true);
    c.put("routed_scaling_factor", 2.5);
    c.put("scoring_func", "sigmoid");
    c.put("topk_method", "noaux_tc");
    c.put("hidden_act", "silu");
    c.put("rms_norm_eps", 1e-6);
    c.put("vocab_size", s.vocab());
    c.put("max_position_embeddings", s.maxPositions());
    c.put("bos_token_id", 0);
    c.put("eos_token_id", 1);
    c.put("tie_word_embeddings", false);
    c.put("num_nextn_predict_layers", s.nextTokenLayers());
    if (storage == Storage.FP8) {
      ObjectNode q = c.putObject("quantization_config");
      q.put("activation_scheme", "dynamic");
      q.put("fmt", "e4m3");
      q.put("quant_method", "fp8");
      q.putArray("weight_block_size").add(fp8Block).add(fp8Block);
    }
    return c;
  }

  /**
   * Writes a checkpoint of weights drawn from {@code seed} into {@code directory}: one
   * {@code model.safetensors}, or two shards with {@code model.safetensors.index.json} (layer 0
   * and the embedding in the first).
   *
   * @param fp8Block the FP8 scale block's rows and columns (DeepSeek-V3's: 128)
   * @return every tensor by name, as the float32 values the engine will read
   */
  public static Map<String, float[]> write(Path directory, Shape shape, Storage storage,
      int fp8Block, boolean sharded, long seed) throws IOException {
    return write(directory, shape, storage, fp8Block, sharded, seed, false);
  }

  /**
   * {@link #write(Path, Shape, Storage, int, boolean, long)}, of a draftable checkpoint (see
   * the class) when {@code draftable}.
   */
  public static Map<String, float[]> write(Path directory, Shape shape, Storage storage,
      int fp8Block, boolean sharded, long seed, boolean draftable) throws IOException {
    RandomDeepSeekCheckpoint model =
        new RandomDeepSeekCheckpoint(shape, storage, fp8Block, seed, draftable);
    Files.createDirectories(directory);
    Files.writeString(directory.resolve("config.json"),
        config(shape, storage, fp8Block).toPrettyString());
    SafetensorsWriter first = new SafetensorsWriter();
    SafetensorsWriter second = sharded ? new SafetensorsWriter() : first;
    model.fill(first, second);
    if (sharded) {
      String one = "model-00001-of-00002.safetensors";
      String two = "model-00002-of-00002.safetensors";
      first.write(directory.resolve(one));
      second.write(directory.resolve(two));
      ObjectNode index = JSON.createObjectNode();
      ObjectNode map = index.putObject("weight_map");
      model.weights.keySet().forEach(name -> map.put(name,
          name.startsWith("model.layers.0.") || name.startsWith("model.embed") ? one : two));
      Files.writeString(directory.resolve("model.safetensors.index.json"), index.toString());
    } else {
      first.write(directory.resolve("model.safetensors"));
    }
    return model.weights;
  }

  private void fill(SafetensorsWriter first, SafetensorsWriter second) {
    Shape s = shape;
    int hidden = s.hidden();
    float[] embedding = uniform(s.vocab() * hidden, 1f);
    plain(first, "model.embed_tokens.weight", embedding, s.vocab(), hidden);
    for (int l = 0; l < s.layers(); l++) {
      block(l == 0 ? first : second, l);
    }
    float[] finalNorm = norm(second, "model.norm.weight", hidden);
    float[] head = uniform(s.vocab() * hidden, 1f / (float) Math.sqrt(hidden));
    plain(second, "lm_head.weight", head, s.vocab(), hidden);
    for (int l = s.layers(); l < s.layers() + s.nextTokenLayers(); l++) {
      String p = "model.layers." + l + ".";
      plain(second, p + "embed_tokens.weight", embedding, s.vocab(), hidden);
      if (draftable) {
        float[] ones = new float[hidden];
        Arrays.fill(ones, 1f);
        plain(second, p + "enorm.weight", ones, hidden);
        norm(second, p + "hnorm.weight", hidden);
        float[] passEmbedding = new float[hidden * 2 * hidden];
        for (int r = 0; r < hidden; r++) {
          passEmbedding[r * 2 * hidden + r] = 1f;
        }
        linear(second, p + "eh_proj.weight", passEmbedding, hidden, 2 * hidden);
        block(second, l);
        plain(second, p + "shared_head.norm.weight", finalNorm, hidden);
      } else {
        norm(second, p + "enorm.weight", hidden);
        norm(second, p + "hnorm.weight", hidden);
        linear(second, p + "eh_proj.weight", hidden, 2 * hidden);
        block(second, l);
        norm(second, p + "shared_head.norm.weight", hidden);
      }
      plain(second, p + "shared_head.head.weight", head, s.vocab(), hidden);
    }
  }

  /** Decoder block {@code l}: attention, then a dense feed-forward or experts. */
  private void block(SafetensorsWriter out, int l) {
    Shape s = shape;
    int hidden = s.hidden();
    String p = "model.layers." + l + ".";
    norm(out, p + "input_layernorm.weight", hidden);
    String a = p + "self_attn.";
    int qk = s.nopeDim() + s.ropeDim();
    if (s.qLoraRank() > 0) {
      linear(out, a + "q_a_proj.weight", s.qLoraRank(), hidden);
      norm(out, a + "q_a_layernorm.weight", s.qLoraRank());
      linear(out, a + "q_b_proj.weight", s.heads() * qk, s.qLoraRank());
    } else {
      linear(out, a + "q_proj.weight", s.heads() * qk, hidden);
    }
    linear(out, a + "kv_a_proj_with_mqa.weight", s.kvLoraRank() + s.ropeDim(), hidden);
    norm(out, a + "kv_a_layernorm.weight", s.kvLoraRank());
    linear(out, a + "kv_b_proj.weight", s.heads() * (s.nopeDim() + s.valueDim()),
        s.kvLoraRank());
    linear(out, a + "o_proj.weight", hidden, s.heads() * s.valueDim());
    norm(out, p + "post_attention_layernorm.weight", hidden);
    if (l < s.denseLayers()) {
      feedForward(out, p + "mlp.", s.intermediate());
      return;
    }
    plain(out, p + "mlp.gate.weight",
        uniform(s.routedExperts() * hidden, 1f / (float) Math.sqrt(hidden)), s.routedExperts(),
        hidden);
    float[] bias = uniform(s.routedExperts(), 0.1f);
    out.f32(p + "mlp.gate.e_score_correction_bias", bias, s.routedExperts());
    weights.put(p + "mlp.gate.e_score_correction_bias", bias);
    for (int e = 0; e < s.routedExperts(); e++) {
      feedForward(out, p + "mlp.experts." + e + ".", s.moeIntermediate());
    }
    if (s.sharedExperts() > 0) {
      feedForward(out, p + "mlp.shared_experts.", s.sharedExperts() * s.moeIntermediate());
    }
  }

  private void feedForward(SafetensorsWriter out, String prefix, int width) {
    linear(out, prefix + "gate_proj.weight", width, shape.hidden());
    linear(out, prefix + "up_proj.weight", width, shape.hidden());
    linear(out, prefix + "down_proj.weight", shape.hidden(), width);
  }

  /**
   * A projection of random weights; a block's output projection of a draftable checkpoint
   * scaled down.
   */
  private void linear(SafetensorsWriter out, String name, int rows, int cols) {
    boolean output = name.endsWith("o_proj.weight") || name.endsWith("down_proj.weight");
    float bound = (draftable && output ? DRAFTABLE_OUTPUT_SCALE : 1f) / (float) Math.sqrt(cols);
    linear(out, name, uniform(rows * cols, bound), rows, cols);
  }

  /** A projection: FP8 in an FP8 checkpoint, as DeepSeek-V3 stores them. */
  private void linear(SafetensorsWriter out, String name, float[] values, int rows, int cols) {
    if (storage == Storage.FP8) {
      out.fp8(name, values, rows, cols, fp8Block, fp8Block);
      weights.put(name, values);
    } else {
      plain(out, name, values, rows, cols);
    }
  }

  private float[] norm(SafetensorsWriter out, String name, int size) {
    float[] values = new float[size];
    for (int i = 0; i < size; i++) {
      values[i] = 1f + (random.nextFloat() - 0.5f) * 0.4f;
    }
    plain(out, name, values, size);
    return values;
  }

  /** F32 in an F32 checkpoint, else BF16. */
  private void plain(SafetensorsWriter out, String name, float[] values, long... dims) {
    if (storage == Storage.F32) {
      out.f32(name, values, dims);
    } else {
      out.bf16(name, values, dims);
    }
    weights.put(name, values);
  }

  private float[] uniform(int n, float bound) {
    float[] values = new float[n];
    for (int i = 0; i < n; i++) {
      values[i] = (random.nextFloat() * 2 - 1) * bound;
    }
    return values;
  }
}
