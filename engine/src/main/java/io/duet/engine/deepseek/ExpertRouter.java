package io.duet.engine.deepseek;

/**
 * DeepSeek-V3's choice of experts for one token, as HF's {@code MoEGate} ({@code noaux_tc}):
 * sigmoid scores; for the choice only, each score plus its expert's correction bias; the
 * {@code topk_group} groups whose two best corrected scores add up highest; in them, the
 * {@code num_experts_per_tok} experts of highest corrected score. Their weights are the
 * uncorrected scores, normalized to sum 1 ({@code norm_topk_prob}) and times
 * {@code routed_scaling_factor}. Ties go to the lower index. Not thread-safe: it keeps scratch.
 */
final class ExpertRouter {

  private final DeepSeekConfig c;
  private final float[] scores;
  private final float[] corrected;
  private final float[] groupScores;
  private final boolean[] groupChosen;
  private final boolean[] taken;

  ExpertRouter(DeepSeekConfig c) {
    this.c = c;
    scores = new float[c.routedExperts()];
    corrected = new float[c.routedExperts()];
    groupScores = new float[c.expertGroups()];
    groupChosen = new boolean[c.expertGroups()];
    taken = new boolean[c.routedExperts()];
  }

  /**
   * Routes a token from its router logits {@code logits[from .. from + n_routed_experts)}:
   * writes its experts, in increasing order, to {@code experts[to ..]} and their weights to
   * {@code weights[to ..]}, {@code num_experts_per_tok} of each.
   */
  void route(float[] logits, int from, float[] bias, int[] experts, float[] weights, int to) {
    int count = c.routedExperts();
    int perGroup = count / c.expertGroups();
    for (int e = 0; e < count; e++) {
      scores[e] = (float) (1.0 / (1.0 + Math.exp(-logits[from + e])));
      corrected[e] = scores[e] + bias[e];
    }
    for (int g = 0; g < c.expertGroups(); g++) {
      groupScores[g] = bestTwo(g * perGroup, perGroup);
      groupChosen[g] = false;
    }
    for (int k = 0; k < c.topkGroups(); k++) {
      int best = -1;
      for (int g = 0; g < c.expertGroups(); g++) {
        if (!groupChosen[g] && (best < 0 || groupScores[g] > groupScores[best])) {
          best = g;
        }
      }
      groupChosen[best] = true;
    }
    java.util.Arrays.fill(taken, false);
    int top = c.expertsPerToken();
    for (int k = 0; k < top; k++) {
      int best = -1;
      for (int e = 0; e < count; e++) {
        if (!taken[e] && groupChosen[e / perGroup]
            && (best < 0 || corrected[e] > corrected[best])) {
          best = e;
        }
      }
      taken[best] = true;
    }
    float sum = 0f;
    for (int e = 0, k = to; e < count; e++) {
      if (taken[e]) {
        experts[k] = e;
        weights[k] = scores[e];
        sum += scores[e];
        k++;
      }
    }
    float denominator = c.normTopkProb() && top > 1 ? sum + 1e-20f : 1f;
    for (int k = to; k < to + top; k++) {
      weights[k] = weights[k] / denominator * c.routedScalingFactor();
    }
  }

  /** The sum of the two highest corrected scores among {@code size} experts from {@code first}. */
  private float bestTwo(int first, int size) {
    if (size == 1) {
      return corrected[first];
    }
    float best = Float.NEGATIVE_INFINITY;
    float second = Float.NEGATIVE_INFINITY;
    for (int e = first; e < first + size; e++) {
      float s = corrected[e];
      if (s > best) {
        second = best;
        best = s;
      } else if (s > second) {
        second = s;
      }
    }
    return best + second;
  }
}
