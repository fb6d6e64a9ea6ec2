package io.duet.engine.deepseek;

/**
 * The rotary position embedding of DeepSeek-V3's rope part ({@code qk_rope_head_dim} values of
 * each query head and of the shared key), with YaRN scaling when the config asks for it: the
 * frequencies and the cos/sin magnitude as Hugging Face's {@code DeepseekV3YarnRotaryEmbedding}
 * computes them.
 *
 * <p>Pairs are rotated interleaved, {@code (x[2i], x[2i+1])} by angle {@code pos * freq[i]}, as
 * DeepSeek's reference {@code inference/model.py} does. HF's {@code modeling_deepseek.py} first
 * de-interleaves q and k ({@code view(d/2, 2).transpose}) and then rotates halves, which
 * computes the same rotated pairs in the other order; since queries and keys are permuted alike,
 * every score is the same. The cache stores the rotated key in the interleaved order.
 */
final class RotaryTables {

  private final int half;
  private final float[] cos;
  private final float[] sin;

  RotaryTables(DeepSeekConfig c) {
    int dim = c.qkRopeHeadDim();
    this.half = dim / 2;
    double[] inverseFrequency = inverseFrequencies(dim, c.ropeTheta(), c.yarn());
    double magnitude = c.yarn() == null ? 1.0
        : DeepSeekConfig.Yarn.mscale(c.yarn().factor(), c.yarn().mscale())
            / DeepSeekConfig.Yarn.mscale(c.yarn().factor(), c.yarn().mscaleAllDim());
    cos = new float[c.maxPositions() * half];
    sin = new float[c.maxPositions() * half];
    for (int pos = 0; pos < c.maxPositions(); pos++) {
      for (int i = 0; i < half; i++) {
        double angle = pos * (double) (float) inverseFrequency[i];
        cos[pos * half + i] = (float) (Math.cos(angle) * magnitude);
        sin[pos * half + i] = (float) (Math.sin(angle) * magnitude);
      }
    }
  }

  /** HF's {@code inv_freq}: plain RoPE, or YaRN's blend of interpolated and original ones. */
  private static double[] inverseFrequencies(int dim, double base, DeepSeekConfig.Yarn yarn) {
    double[] extrapolated = new double[dim / 2];
    for (int i = 0; i < dim / 2; i++) {
      extrapolated[i] = 1.0 / Math.pow(base, (2.0 * i) / dim);
    }
    if (yarn == null) {
      return extrapolated;
    }
    double low = Math.max(Math.floor(correctionDim(yarn.betaFast(), dim, base,
        yarn.originalMaxPositions())), 0);
    double high = Math.min(Math.ceil(correctionDim(yarn.betaSlow(), dim, base,
        yarn.originalMaxPositions())), dim - 1);
    if (low == high) {
      high += 0.001;
    }
    double[] blended = new double[dim / 2];
    for (int i = 0; i < dim / 2; i++) {
      double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
      double keepOriginal = 1.0 - ramp;
      double interpolated = extrapolated[i] / yarn.factor();
      blended[i] = interpolated * (1 - keepOriginal) + extrapolated[i] * keepOriginal;
    }
    return blended;
  }

  /** HF's {@code yarn_find_correction_dim}. */
  private static double correctionDim(double rotations, int dim, double base, int positions) {
    return dim * Math.log(positions / (rotations * 2 * Math.PI)) / (2 * Math.log(base));
  }

  /** Rotates the {@code 2 * half} values at {@code offset} for position {@code position}. */
  void rotate(float[] values, int offset, int position) {
    int table = position * half;
    for (int i = 0; i < half; i++) {
      float c = cos[table + i];
      float s = sin[table + i];
      int at = offset + 2 * i;
      float x0 = values[at];
      float x1 = values[at + 1];
      values[at] = x0 * c - x1 * s;
      values[at + 1] = x0 * s + x1 * c;
    }
  }
}
