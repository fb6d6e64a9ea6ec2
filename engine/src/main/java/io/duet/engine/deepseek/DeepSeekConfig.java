package io.duet.engine.deepseek;

import com.fasterxml.jackson.databind.JsonNode;
import io.duet.engine.ModelFormatException;
import io.duet.engine.safetensors.HfConfigReader;
import java.util.List;

/**
 * The shape of a DeepSeek-V3 model, as its Hugging Face {@code config.json} gives it (the names
 * in the comments are the JSON keys).
 *
 * @param qLoraRank {@code q_lora_rank}; 0 when null: the query is one projection
 *     ({@code q_proj}) instead of a compressed one
 * @param yarn {@code rope_scaling} of type yarn, or null for plain RoPE
 * @param firstDenseLayers {@code first_k_dense_replace}: the layers before it have a dense
 *     feed-forward, the rest mixtures of experts
 * @param expertGroups {@code n_group}; {@code topkGroups} ({@code topk_group}) of them are
 *     searched for each token's experts
 * @param nextTokenLayers {@code num_nextn_predict_layers}: multi-token prediction (MTP) modules
 *     stored after the main layers, as {@code model.layers.<num_hidden_layers + i>.*}
 */
public record DeepSeekConfig(int hiddenSize, int layers, int heads, int qLoraRank,
    int kvLoraRank, int qkNopeHeadDim, int qkRopeHeadDim, int vHeadDim, double ropeTheta,
    Yarn yarn, int firstDenseLayers, int moeLayerFrequency, int intermediateSize,
    int moeIntermediateSize, int sharedExperts, int routedExperts, int expertsPerToken,
    int expertGroups, int topkGroups, boolean normTopkProb, float routedScalingFactor,
    float rmsNormEps, int vocabSize, int maxPositions, int bosToken, List<Integer> eosTokens,
    int nextTokenLayers) {

  public static final String MODEL_TYPE = "deepseek_v3";

  /**
   * YaRN RoPE scaling ({@code rope_scaling} with {@code type} yarn).
   *
   * @param mscale {@code mscale}: scales the rotary cos and sin by
   *     {@code mscale(factor, mscale) / mscale(factor, mscaleAllDim)}
   * @param mscaleAllDim {@code mscale_all_dim}: when not 0, the softmax scale is multiplied by
   *     {@code mscale(factor, mscaleAllDim)^2}
   */
  public record Yarn(double factor, int originalMaxPositions, double betaFast, double betaSlow,
      double mscale, double mscaleAllDim) {

    /** HF's {@code yarn_get_mscale}. */
    static double mscale(double factor, double m) {
      return factor <= 1 ? 1.0 : 0.1 * m * Math.log(factor) + 1.0;
    }
  }

  /** Query and key width of one head: the position-free part, then the rotary part. */
  public int qkHeadDim() {
    return qkNopeHeadDim + qkRopeHeadDim;
  }

  /** Whether layer {@code layer} has a mixture of experts (else a dense feed-forward). */
  public boolean isMoeLayer(int layer) {
    return routedExperts > 0 && layer >= firstDenseLayers && layer % moeLayerFrequency == 0;
  }

  /** What attention scores are multiplied by before the softmax. */
  public float softmaxScale() {
    double scale = 1.0 / Math.sqrt(qkHeadDim());
    if (yarn != null && yarn.mscaleAllDim() != 0) {
      double m = Yarn.mscale(yarn.factor(), yarn.mscaleAllDim());
      scale *= m * m;
    }
    return (float) scale;
  }

  /** Parses {@code config.json}; {@code source} names it in errors. */
  static DeepSeekConfig parse(JsonNode json, String source) throws ModelFormatException {
    HfConfigReader r = new HfConfigReader(json, source);
    String modelType = json.path("model_type").asText("");
    if (!modelType.equals(MODEL_TYPE)) {
      throw r.unsupported("model_type " + modelType + " (expected " + MODEL_TYPE + ")");
    }
    if (json.path("tie_word_embeddings").asBoolean(false)) {
      throw r.unsupported("tie_word_embeddings true (DeepSeek-V3 has its own lm_head)");
    }
    String scoring = json.path("scoring_func").asText("sigmoid");
    if (!scoring.equals("sigmoid")) {
      throw r.unsupported("scoring_func " + scoring + " (only sigmoid, DeepSeek-V3's)");
    }
    String topkMethod = json.path("topk_method").asText("noaux_tc");
    if (!topkMethod.equals("noaux_tc")) {
      throw r.unsupported("topk_method " + topkMethod + " (only noaux_tc, DeepSeek-V3's)");
    }
    String activation = json.path("hidden_act").asText("silu");
    if (!activation.equals("silu")) {
      throw r.unsupported("hidden_act " + activation + " (only silu)");
    }
    int layers = r.positive("num_hidden_layers");
    DeepSeekConfig c = new DeepSeekConfig(r.positive("hidden_size"), layers,
        r.positive("num_attention_heads"), r.optionalPositive("q_lora_rank"),
        r.positive("kv_lora_rank"), r.positive("qk_nope_head_dim"),
        r.positive("qk_rope_head_dim"), r.positive("v_head_dim"),
        r.number("rope_theta", 10000.0), yarn(json.get("rope_scaling"), r),
        r.natural("first_k_dense_replace", 0), r.natural("moe_layer_freq", 1),
        r.positive("intermediate_size"), r.positive("moe_intermediate_size"),
        r.natural("n_shared_experts", 0), r.positive("n_routed_experts"),
        r.positive("num_experts_per_tok"), r.natural("n_group", 1),
        r.natural("topk_group", 1), json.path("norm_topk_prob").asBoolean(false),
        (float) r.number("routed_scaling_factor", 1.0), (float) r.number("rms_norm_eps", 1e-6),
        r.positive("vocab_size"), r.positive("max_position_embeddings"),
        r.natural("bos_token_id", 0), r.tokens("eos_token_id"),
        r.natural("num_nextn_predict_layers", 0));
    c.validate(r);
    return c;
  }

  private static Yarn yarn(JsonNode scaling, HfConfigReader r) throws ModelFormatException {
    if (scaling == null || scaling.isNull()) {
      return null;
    }
    String type = scaling.path("type").asText(scaling.path("rope_type").asText(""));
    if (!type.equals("yarn")) {
      throw r.unsupported("rope_scaling type '" + type + "' (only yarn)");
    }
    HfConfigReader s = new HfConfigReader(scaling, r.source() + " rope_scaling");
    return new Yarn(s.number("factor", 1.0), s.positive("original_max_position_embeddings"),
        s.number("beta_fast", 32), s.number("beta_slow", 1), s.number("mscale", 1),
        s.number("mscale_all_dim", 0));
  }

  private void validate(HfConfigReader r) throws ModelFormatException {
    if (qkRopeHeadDim % 2 != 0) {
      throw r.unsupported("qk_rope_head_dim " + qkRopeHeadDim + " is odd; RoPE rotates pairs");
    }
    if (expertGroups < 1 || routedExperts % expertGroups != 0) {
      throw r.unsupported("n_group " + expertGroups + " does not divide n_routed_experts "
          + routedExperts);
    }
    if (expertGroups > 1 && routedExperts / expertGroups < 2) {
      throw r.unsupported("groups of one expert (a group scores by its best two)");
    }
    if (topkGroups < 1 || topkGroups > expertGroups) {
      throw r.unsupported("topk_group " + topkGroups + " outside 1.." + expertGroups);
    }
    if (expertsPerToken > topkGroups * (routedExperts / expertGroups)) {
      throw r.unsupported("num_experts_per_tok " + expertsPerToken + " exceeds the experts of "
          + topkGroups + " groups");
    }
    if (moeLayerFrequency < 1) {
      throw r.unsupported("moe_layer_freq " + moeLayerFrequency);
    }
    if (bosToken >= vocabSize || eosTokens.stream().anyMatch(t -> t < 0 || t >= vocabSize)) {
      throw r.unsupported("bos/eos token outside the vocabulary of " + vocabSize);
    }
  }
}
