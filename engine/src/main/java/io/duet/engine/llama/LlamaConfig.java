package io.duet.engine.llama;

import com.fasterxml.jackson.databind.JsonNode;
import io.duet.engine.ModelFormatException;
import io.duet.engine.safetensors.HfConfigReader;

/**
 * The shape of a Llama-architecture transformer, as a llama2.c checkpoint header or a Hugging
 * Face {@code config.json} gives it.
 *
 * @param sharedClassifier whether the output classifier reuses the token embedding matrix
 * @param normEps RMSNorm's epsilon ({@code rms_norm_eps}; llama2.c's is {@value #LLAMA2C_EPS})
 * @param ropeTheta RoPE's base ({@code rope_theta}; llama2.c's is {@value #LLAMA2C_THETA})
 */
public record LlamaConfig(int dim, int hiddenDim, int layers, int heads, int kvHeads,
    int vocabSize, int seqLen, boolean sharedClassifier, float normEps, float ropeTheta) {

  public static final float LLAMA2C_EPS = 1e-5f;
  public static final float LLAMA2C_THETA = 10000f;
  /** {@code model_type} of a Hugging Face Llama checkpoint. */
  public static final String HF_MODEL_TYPE = "llama";

  /** A llama2.c shape: its fixed epsilon and RoPE base. */
  public LlamaConfig(int dim, int hiddenDim, int layers, int heads, int kvHeads, int vocabSize,
      int seqLen, boolean sharedClassifier) {
    this(dim, hiddenDim, layers, heads, kvHeads, vocabSize, seqLen, sharedClassifier,
        LLAMA2C_EPS, LLAMA2C_THETA);
  }

  /**
   * Reads a Hugging Face {@code config.json} of {@code model_type} llama; {@code source} names
   * it in errors. RoPE scaling (Llama 3.1's and others) and attention or MLP biases are refused.
   */
  public static LlamaConfig fromHuggingFace(JsonNode json, String source)
      throws ModelFormatException {
    HfConfigReader r = new HfConfigReader(json, source);
    String modelType = json.path("model_type").asText("");
    if (!modelType.equals(HF_MODEL_TYPE)) {
      throw r.unsupported("model_type " + modelType + " (expected " + HF_MODEL_TYPE + ")");
    }
    JsonNode scaling = json.get("rope_scaling");
    if (scaling != null && !scaling.isNull()) {
      throw r.unsupported("rope_scaling " + scaling + " (plain RoPE only)");
    }
    if (json.path("attention_bias").asBoolean(false) || json.path("mlp_bias").asBoolean(false)) {
      throw r.unsupported("attention or MLP biases");
    }
    String activation = json.path("hidden_act").asText("silu");
    if (!activation.equals("silu")) {
      throw r.unsupported("hidden_act " + activation + " (only silu)");
    }
    int heads = r.positive("num_attention_heads");
    int dim = r.positive("hidden_size");
    int headDim = r.natural("head_dim", dim / heads);
    if (headDim * heads != dim) {
      throw r.unsupported("head_dim " + headDim + " x " + heads + " heads is not hidden_size "
          + dim);
    }
    LlamaConfig c = new LlamaConfig(dim, r.positive("intermediate_size"),
        r.positive("num_hidden_layers"), heads, r.natural("num_key_value_heads", heads),
        r.positive("vocab_size"), r.positive("max_position_embeddings"),
        json.path("tie_word_embeddings").asBoolean(false),
        (float) r.number("rms_norm_eps", 1e-6), (float) r.number("rope_theta", 10000.0));
    c.validate(source);
    return c;
  }

  public int headSize() {
    return dim / heads;
  }

  public int kvDim() {
    return kvHeads * headSize();
  }

  /** Validates the header values; the message names what is impossible about them. */
  public void validate(String source) throws ModelFormatException {
    String problem = null;
    if (dim <= 0 || hiddenDim <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocabSize <= 0
        || seqLen <= 0) {
      problem = "every dimension must be positive";
    } else if (dim % heads != 0) {
      problem = "dim is not a multiple of n_heads";
    } else if (heads % kvHeads != 0) {
      problem = "n_heads is not a multiple of n_kv_heads";
    } else if (headSize() % 2 != 0) {
      problem = "head size is odd, RoPE needs pairs";
    } else if (dim > 1 << 16 || hiddenDim > 1 << 18 || layers > 1024 || vocabSize > 1 << 22
        || seqLen > 1 << 20) {
      problem = "a dimension is implausibly large";
    }
    if (problem != null) {
      throw new ModelFormatException(source + ": bad model shape " + this + ": " + problem);
    }
  }
}
