package io.duet.engine.deepseek;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/**
 * A straightforward DeepSeek-V3 in double precision, written after HF's
 * {@code modeling_deepseek.py} and independent of the engine's code: every position recomputed
 * from scratch, the cached latent expanded into full per-head keys and values ({@code kv_b_proj}
 * applied, not absorbed), RoPE as HF applies it (q and k de-interleaved, then rotate-half), and
 * routing by sorting.
 */
final class NaiveDeepSeek {

  private final JsonNode c;
  private final Map<String, float[]> w;
  private final int hidden;
  private final int heads;
  private final int nope;
  private final int rope;
  private final int v;
  private final int rank;
  private final int qRank;
  private final double eps;
  private final double[] cos;
  private final double[] sin;
  private final double softmaxScale;

  NaiveDeepSeek(JsonNode config, Map<String, float[]> weights) {
    this.c = config;
    this.w = weights;
    hidden = c.get("hidden_size").asInt();
    heads = c.get("num_attention_heads").asInt();
    nope = c.get("qk_nope_head_dim").asInt();
    rope = c.get("qk_rope_head_dim").asInt();
    v = c.get("v_head_dim").asInt();
    rank = c.get("kv_lora_rank").asInt();
    qRank = c.get("q_lora_rank").isNull() ? 0 : c.get("q_lora_rank").asInt();
    eps = c.get("rms_norm_eps").asDouble();
    JsonNode yarn = c.get("rope_scaling");
    double factor = yarn.get("factor").asDouble();
    double base = c.get("rope_theta").asDouble();
    // HF DeepseekV3YarnRotaryEmbedding
    double lowDim = correctionDim(yarn.get("beta_fast").asDouble(), base,
        yarn.get("original_max_position_embeddings").asInt());
    double highDim = correctionDim(yarn.get("beta_slow").asDouble(), base,
        yarn.get("original_max_position_embeddings").asInt());
    double low = Math.max(Math.floor(lowDim), 0);
    double high = Math.min(Math.ceil(highDim), rope - 1);
    double[] invFreq = new double[rope / 2];
    for (int i = 0; i < rope / 2; i++) {
      double extra = 1.0 / Math.pow(base, 2.0 * i / rope);
      double inter = 1.0 / (factor * Math.pow(base, 2.0 * i / rope));
      double ramp = Math.min(1, Math.max(0, (i - low) / (high == low ? 0.001 : high - low)));
      double mask = 1 - ramp;
      invFreq[i] = inter * (1 - mask) + extra * mask;
    }
    double mscale = yarnMscale(factor, yarn.get("mscale").asDouble())
        / yarnMscale(factor, yarn.get("mscale_all_dim").asDouble());
    int positions = c.get("max_position_embeddings").asInt();
    cos = new double[positions * rope];
    sin = new double[positions * rope];
    for (int p = 0; p < positions; p++) {
      for (int i = 0; i < rope; i++) {
        double angle = p * invFreq[i % (rope / 2)];
        cos[p * rope + i] = Math.cos(angle) * mscale;
        sin[p * rope + i] = Math.sin(angle) * mscale;
      }
    }
    double allDim = yarnMscale(factor, yarn.get("mscale_all_dim").asDouble());
    softmaxScale = Math.pow(nope + rope, -0.5) * allDim * allDim;
  }

  private double correctionDim(double rotations, double base, int positions) {
    return rope * Math.log(positions / (rotations * 2 * Math.PI)) / (2 * Math.log(base));
  }

  /** The index of the largest value: the greedy token of a row of logits. */
  static int argmax(double[] values) {
    int best = 0;
    for (int i = 1; i < values.length; i++) {
      if (values[i] > values[best]) {
        best = i;
      }
    }
    return best;
  }

  private static double yarnMscale(double scale, double mscale) {
    return scale <= 1 ? 1.0 : 0.1 * mscale * Math.log(scale) + 1.0;
  }

  /** The logits after each of {@code tokens}, at positions 0, 1, ... */
  double[][] logits(int[] tokens) {
    double[][] h = hidden(tokens);
    double[][] logits = new double[h.length][];
    for (int t = 0; t < h.length; t++) {
      logits[t] = linear("lm_head.weight", rmsNorm(h[t], "model.norm.weight"));
    }
    return logits;
  }

  /**
   * The multi-token prediction module's logits at positions 0 .. n-2 of {@code tokens}: at
   * position t, from the main model's hidden state there (before the final norm) and the
   * embedding of token t+1, the distribution of token t+2 (DeepSeek-V3's MTP as vLLM's
   * {@code deepseek_mtp.py} computes it, less its zeroed embedding at position 0).
   */
  double[][] nextTokenLogits(int[] tokens) {
    int layers = c.get("num_hidden_layers").asInt();
    String m = "model.layers." + layers + ".";
    double[][] main = hidden(tokens);
    int n = tokens.length - 1;
    double[][] h = new double[n][];
    for (int t = 0; t < n; t++) {
      double[] joined = new double[2 * hidden];
      System.arraycopy(rmsNorm(row(m + "embed_tokens.weight", tokens[t + 1], hidden),
          m + "enorm.weight"), 0, joined, 0, hidden);
      System.arraycopy(rmsNorm(main[t], m + "hnorm.weight"), 0, joined, hidden, hidden);
      h[t] = linear(m + "eh_proj.weight", joined);
    }
    block(h, layers);
    double[][] logits = new double[n][];
    for (int t = 0; t < n; t++) {
      logits[t] = linear(m + "shared_head.head.weight", rmsNorm(h[t],
          m + "shared_head.norm.weight"));
    }
    return logits;
  }

  /** The hidden state after the last layer at each position, before the final norm. */
  private double[][] hidden(int[] tokens) {
    int n = tokens.length;
    double[][] h = new double[n][];
    for (int t = 0; t < n; t++) {
      h[t] = row("model.embed_tokens.weight", tokens[t], hidden);
    }
    int layers = c.get("num_hidden_layers").asInt();
    for (int l = 0; l < layers; l++) {
      block(h, l);
    }
    return h;
  }

  /** Decoder block {@code l} over every position of {@code h}, in place. */
  private void block(double[][] h, int l) {
    int n = h.length;
    String p = "model.layers." + l + ".";
    double[][] normed = new double[n][];
    for (int t = 0; t < n; t++) {
      normed[t] = rmsNorm(h[t], p + "input_layernorm.weight");
    }
    double[][] attended = attention(normed, p + "self_attn.");
    for (int t = 0; t < n; t++) {
      add(h[t], attended[t]);
      double[] x = rmsNorm(h[t], p + "post_attention_layernorm.weight");
      add(h[t], l < c.get("first_k_dense_replace").asInt() ? mlp(x, p + "mlp.")
          : moe(x, p + "mlp."));
    }
  }

  private double[][] attention(double[][] x, String a) {
    int n = x.length;
    int qk = nope + rope;
    double[][][] q = new double[n][heads][];
    double[][][] k = new double[n][heads][];
    double[][][] val = new double[n][heads][];
    for (int t = 0; t < n; t++) {
      double[] query = qRank > 0
          ? linear(a + "q_b_proj.weight", rmsNorm(linear(a + "q_a_proj.weight", x[t]),
              a + "q_a_layernorm.weight"))
          : linear(a + "q_proj.weight", x[t]);
      double[] kva = linear(a + "kv_a_proj_with_mqa.weight", x[t]);
      double[] latent = rmsNorm(Arrays.copyOf(kva, rank), a + "kv_a_layernorm.weight");
      double[] kPe = applyRope(Arrays.copyOfRange(kva, rank, rank + rope), t);
      double[] kv = linear(a + "kv_b_proj.weight", latent);
      for (int h = 0; h < heads; h++) {
        q[t][h] = new double[qk];
        System.arraycopy(query, h * qk, q[t][h], 0, nope);
        System.arraycopy(applyRope(Arrays.copyOfRange(query, h * qk + nope, (h + 1) * qk), t),
            0, q[t][h], nope, rope);
        k[t][h] = new double[qk];
        System.arraycopy(kv, h * (nope + v), k[t][h], 0, nope);
        System.arraycopy(kPe, 0, k[t][h], nope, rope);
        val[t][h] = Arrays.copyOfRange(kv, h * (nope + v) + nope, (h + 1) * (nope + v));
      }
    }
    double[][] out = new double[n][];
    for (int t = 0; t < n; t++) {
      double[] concat = new double[heads * v];
      for (int h = 0; h < heads; h++) {
        double[] scores = new double[t + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int s = 0; s <= t; s++) {
          scores[s] = dot(q[t][h], k[s][h]) * softmaxScale;
          max = Math.max(max, scores[s]);
        }
        double sum = 0;
        for (int s = 0; s <= t; s++) {
          scores[s] = Math.exp(scores[s] - max);
          sum += scores[s];
        }
        for (int s = 0; s <= t; s++) {
          for (int d = 0; d < v; d++) {
            concat[h * v + d] += scores[s] / sum * val[s][h][d];
          }
        }
      }
      out[t] = linear(a + "o_proj.weight", concat);
    }
    return out;
  }

  /** HF's apply_rotary_pos_emb: de-interleave, then x * cos + rotate_half(x) * sin. */
  private double[] applyRope(double[] x, int position) {
    double[] permuted = new double[rope];
    for (int i = 0; i < rope / 2; i++) {
      permuted[i] = x[2 * i];
      permuted[i + rope / 2] = x[2 * i + 1];
    }
    double[] out = new double[rope];
    for (int i = 0; i < rope; i++) {
      double rotated = i < rope / 2 ? -permuted[i + rope / 2] : permuted[i - rope / 2];
      out[i] = permuted[i] * cos[position * rope + i] + rotated * sin[position * rope + i];
    }
    // Back to the interleaved order; q and k are permuted alike, so scores do not care.
    double[] interleaved = new double[rope];
    for (int i = 0; i < rope / 2; i++) {
      interleaved[2 * i] = out[i];
      interleaved[2 * i + 1] = out[i + rope / 2];
    }
    return interleaved;
  }

  private double[] mlp(double[] x, String p) {
    double[] gate = linear(p + "gate_proj.weight", x);
    double[] up = linear(p + "up_proj.weight", x);
    for (int i = 0; i < gate.length; i++) {
      gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
    }
    return linear(p + "down_proj.weight", gate);
  }

  private double[] moe(double[] x, String p) {
    int experts = c.get("n_routed_experts").asInt();
    int groups = c.get("n_group").asInt();
    int perGroup = experts / groups;
    double[] logits = linear(p + "gate.weight", x);
    float[] bias = w.get(p + "gate.e_score_correction_bias");
    double[] scores = new double[experts];
    double[] choice = new double[experts];
    for (int e = 0; e < experts; e++) {
      scores[e] = 1 / (1 + Math.exp(-logits[e]));
      choice[e] = scores[e] + bias[e];
    }
    List<Integer> groupOrder = new ArrayList<>();
    double[] groupScore = new double[groups];
    for (int g = 0; g < groups; g++) {
      double[] members = Arrays.copyOfRange(choice, g * perGroup, (g + 1) * perGroup);
      Arrays.sort(members);
      groupScore[g] = members[perGroup - 1] + members[perGroup - 2];
      groupOrder.add(g);
    }
    groupOrder.sort(Comparator.comparingDouble((Integer g) -> -groupScore[g]));
    List<Integer> candidates = new ArrayList<>();
    for (int e = 0; e < experts; e++) {
      if (groupOrder.subList(0, c.get("topk_group").asInt()).contains(e / perGroup)) {
        candidates.add(e);
      }
    }
    candidates.sort(Comparator.comparingDouble((Integer e) -> -choice[e]));
    List<Integer> chosen = candidates.subList(0, c.get("num_experts_per_tok").asInt());
    double sum = 0;
    for (int e : chosen) {
      sum += scores[e];
    }
    double[] y = mlp(x, p + "shared_experts.");
    for (int e : chosen) {
      double weight = scores[e] / (sum + 1e-20) * c.get("routed_scaling_factor").asDouble();
      double[] out = mlp(x, p + "experts." + e + ".");
      for (int i = 0; i < hidden; i++) {
        y[i] += weight * out[i];
      }
    }
    return y;
  }

  private double[] rmsNorm(double[] x, String weight) {
    float[] g = w.get(weight);
    double ss = 0;
    for (double value : x) {
      ss += value * value;
    }
    double scale = 1 / Math.sqrt(ss / x.length + eps);
    double[] out = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      out[i] = g[i] * x[i] * scale;
    }
    return out;
  }

  private double[] linear(String name, double[] x) {
    float[] m = w.get(name);
    int rows = m.length / x.length;
    double[] out = new double[rows];
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      for (int i = 0; i < x.length; i++) {
        sum += m[r * x.length + i] * x[i];
      }
      out[r] = sum;
    }
    return out;
  }

  private double[] row(String name, int index, int width) {
    float[] m = w.get(name);
    double[] out = new double[width];
    for (int i = 0; i < width; i++) {
      out[i] = m[index * width + i];
    }
    return out;
  }

  private static void add(double[] target, double[] delta) {
    for (int i = 0; i < target.length; i++) {
      target[i] += delta[i];
    }
  }

  private static double dot(double[] a, double[] b) {
    double sum = 0;
    for (int i = 0; i < a.length; i++) {
      sum += a[i] * b[i];
    }
    return sum;
  }
}
