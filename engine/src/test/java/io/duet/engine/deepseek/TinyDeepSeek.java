package io.duet.engine.deepseek;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.duet.engine.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * Writes small DeepSeek-V3-shaped Hugging Face checkpoints for tests, as real safetensors files
 * under the released checkpoint's tensor names: hidden 64, 3 layers of which 1 dense, 4 heads,
 * kv_lora_rank 16, 16 routed experts (top 4 of 4 groups, 2 groups chosen) and 1 shared, YaRN
 * scaling with a softmax-scale correction. Keeps the weights as the engine will read them
 * (after BF16 or FP8 rounding) for the test's reference.
 */
public final class TinyDeepSeek {

  public enum Storage { F32, BF16, FP8 }

  static final int HIDDEN = 64;
  static final int LAYERS = 3;
  static final int HEADS = 4;
  static final int Q_LORA = 32;
  static final int KV_LORA = 16;
  static final int NOPE = 16;
  static final int ROPE = 8;
  static final int V = 16;
  static final int INTERMEDIATE = 96;
  static final int MOE_INTERMEDIATE = 32;
  static final int EXPERTS = 16;
  static final int VOCAB = 128;
  static final int MAX_POSITIONS = 256;
  /** FP8 block scales per 16x16 block, so that every matrix has several (and ragged) blocks. */
  static final int FP8_BLOCK = 16;

  private static final ObjectMapper JSON = new ObjectMapper();

  final ObjectNode config;
  /** Every tensor by name, as float32 values the engine reads back. */
  final Map<String, float[]> weights = new LinkedHashMap<>();
  private final Storage storage;
  private final Random random;

  private TinyDeepSeek(ObjectNode config, Storage storage, long seed) {
    this.config = config;
    this.storage = storage;
    this.random = new Random(seed);
  }

  /** The config of the test shape; {@code qLora} false makes q_lora_rank null. */
  static ObjectNode config(boolean qLora, Storage storage) {
    ObjectNode c = JSON.createObjectNode();
    c.put("model_type", "deepseek_v3");
    c.putArray("architectures").add("DeepseekV3ForCausalLM");
    c.put("hidden_size", HIDDEN);
    c.put("num_hidden_layers", LAYERS);
    c.put("num_attention_heads", HEADS);
    c.put("num_key_value_heads", HEADS);
    if (qLora) {
      c.put("q_lora_rank", Q_LORA);
    } else {
      c.putNull("q_lora_rank");
    }
    c.put("kv_lora_rank", KV_LORA);
    c.put("qk_nope_head_dim", NOPE);
    c.put("qk_rope_head_dim", ROPE);
    c.put("v_head_dim", V);
    c.put("rope_theta", 10000.0);
    ObjectNode yarn = c.putObject("rope_scaling");
    yarn.put("type", "yarn");
    yarn.put("factor", 4.0);
    yarn.put("original_max_position_embeddings", 64);
    yarn.put("beta_fast", 32);
    yarn.put("beta_slow", 1);
    yarn.put("mscale", 1.0);
    yarn.put("mscale_all_dim", 0.707);
    c.put("first_k_dense_replace", 1);
    c.put("moe_layer_freq", 1);
    c.put("intermediate_size", INTERMEDIATE);
    c.put("moe_intermediate_size", MOE_INTERMEDIATE);
    c.put("n_shared_experts", 1);
    c.put("n_routed_experts", EXPERTS);
    c.put("num_experts_per_tok", 4);
    c.put("n_group", 4);
    c.put("topk_group", 2);
    c.put("norm_topk_prob", true);
    c.put("routed_scaling_factor", 2.5);
    c.put("scoring_func", "sigmoid");
    c.put("topk_method", "noaux_tc");
    c.put("hidden_act", "silu");
    c.put("rms_norm_eps", 1e-6);
    c.put("vocab_size", VOCAB);
    c.put("max_position_embeddings", MAX_POSITIONS);
    c.put("bos_token_id", 0);
    c.put("eos_token_id", 1);
    c.put("tie_word_embeddings", false);
    c.put("num_nextn_predict_layers", 0);
    if (storage == Storage.FP8) {
      ObjectNode q = c.putObject("quantization_config");
      q.put("activation_scheme", "dynamic");
      q.put("fmt", "e4m3");
      q.put("quant_method", "fp8");
      q.putArray("weight_block_size").add(FP8_BLOCK).add(FP8_BLOCK);
    }
    return c;
  }

  /**
   * Writes a checkpoint of random weights drawn from {@code seed} into {@code directory}: one
   * safetensors file, or two shards with {@code model.safetensors.index.json}.
   */
  public static TinyDeepSeek write(Path directory, Storage storage, boolean qLora, boolean sharded,
      long seed) throws IOException {
    TinyDeepSeek model = new TinyDeepSeek(config(qLora, storage), storage, seed);
    Files.createDirectories(directory);
    Files.writeString(directory.resolve("config.json"), model.config.toPrettyString());
    SafetensorsWriter first = new SafetensorsWriter();
    SafetensorsWriter second = sharded ? new SafetensorsWriter() : first;
    model.fill(first, second, qLora);
    if (sharded) {
      first.write(directory.resolve("model-00001-of-00002.safetensors"));
      second.write(directory.resolve("model-00002-of-00002.safetensors"));
      ObjectNode index = JSON.createObjectNode();
      ObjectNode map = index.putObject("weight_map");
      model.weights.keySet().forEach(name -> map.put(name, name.startsWith("model.layers.0.")
          || name.startsWith("model.embed") ? "model-00001-of-00002.safetensors"
          : "model-00002-of-00002.safetensors"));
      Files.writeString(directory.resolve("model.safetensors.index.json"), index.toString());
    } else {
      first.write(directory.resolve("model.safetensors"));
    }
    return model;
  }

  private void fill(SafetensorsWriter first, SafetensorsWriter second, boolean qLora) {
    plain(first, "model.embed_tokens.weight", uniform(VOCAB * HIDDEN, 1f), VOCAB, HIDDEN);
    for (int l = 0; l < LAYERS; l++) {
      SafetensorsWriter out = l == 0 ? first : second;
      String p = "model.layers." + l + ".";
      norm(out, p + "input_layernorm.weight", HIDDEN);
      String a = p + "self_attn.";
      if (qLora) {
        linear(out, a + "q_a_proj.weight", Q_LORA, HIDDEN);
        norm(out, a + "q_a_layernorm.weight", Q_LORA);
        linear(out, a + "q_b_proj.weight", HEADS * (NOPE + ROPE), Q_LORA);
      } else {
        linear(out, a + "q_proj.weight", HEADS * (NOPE + ROPE), HIDDEN);
      }
      linear(out, a + "kv_a_proj_with_mqa.weight", KV_LORA + ROPE, HIDDEN);
      norm(out, a + "kv_a_layernorm.weight", KV_LORA);
      linear(out, a + "kv_b_proj.weight", HEADS * (NOPE + V), KV_LORA);
      linear(out, a + "o_proj.weight", HIDDEN, HEADS * V);
      norm(out, p + "post_attention_layernorm.weight", HIDDEN);
      if (l == 0) {
        feedForward(out, p + "mlp.", INTERMEDIATE);
      } else {
        plain(out, p + "mlp.gate.weight", uniform(EXPERTS * HIDDEN, 1f / (float) Math.sqrt(HIDDEN)),
            EXPERTS, HIDDEN);
        float[] bias = uniform(EXPERTS, 0.1f);
        out.f32(p + "mlp.gate.e_score_correction_bias", bias, EXPERTS);
        weights.put(p + "mlp.gate.e_score_correction_bias", bias);
        for (int e = 0; e < EXPERTS; e++) {
          feedForward(out, p + "mlp.experts." + e + ".", MOE_INTERMEDIATE);
        }
        feedForward(out, p + "mlp.shared_experts.", MOE_INTERMEDIATE);
      }
    }
    norm(second, "model.norm.weight", HIDDEN);
    plain(second, "lm_head.weight", uniform(VOCAB * HIDDEN, 1f / (float) Math.sqrt(HIDDEN)),
        VOCAB, HIDDEN);
  }

  private void feedForward(SafetensorsWriter out, String prefix, int hidden) {
    linear(out, prefix + "gate_proj.weight", hidden, HIDDEN);
    linear(out, prefix + "up_proj.weight", hidden, HIDDEN);
    linear(out, prefix + "down_proj.weight", HIDDEN, hidden);
  }

  /** A projection: FP8 in an FP8 checkpoint, as DeepSeek-V3 stores them. */
  private void linear(SafetensorsWriter out, String name, int rows, int cols) {
    float[] values = uniform(rows * cols, 1f / (float) Math.sqrt(cols));
    if (storage == Storage.FP8) {
      out.fp8(name, values, rows, cols, FP8_BLOCK, FP8_BLOCK);
      weights.put(name, values);
    } else {
      plain(out, name, values, rows, cols);
    }
  }

  private void norm(SafetensorsWriter out, String name, int size) {
    float[] values = new float[size];
    for (int i = 0; i < size; i++) {
      values[i] = 1f + (random.nextFloat() - 0.5f) * 0.4f;
    }
    plain(out, name, values, size);
  }

  /** BF16 unless the whole checkpoint is F32 (norms, embeddings, router, head stay BF16). */
  private void plain(SafetensorsWriter out, String name, float[] values, long... shape) {
    if (storage == Storage.F32) {
      out.f32(name, values, shape);
    } else {
      out.bf16(name, values, shape);
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
