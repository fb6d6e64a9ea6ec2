package io.duet.engine.compute;

/** Small per-row steps of a forward pass, shared by the architectures. */
public final class RowOps {

  private RowOps() {
  }

  /**
   * RMSNorm: {@code out[j] = weight[j] * (in[j] / sqrt(mean(in^2) + eps))} over {@code size}
   * values. {@code out} may be {@code in}.
   */
  public static void rmsNorm(float[] out, int outOffset, float[] in, int inOffset,
      float[] weight, int size, float eps) {
    float ss = 0f;
    for (int j = 0; j < size; j++) {
      float value = in[inOffset + j];
      ss += value * value;
    }
    ss /= size;
    ss += eps;
    ss = 1.0f / (float) Math.sqrt(ss);
    for (int j = 0; j < size; j++) {
      out[outOffset + j] = weight[j] * (ss * in[inOffset + j]);
    }
  }

  /** {@code target[i] += delta[i]} for {@code i < length}. */
  public static void addInto(float[] target, float[] delta, int length) {
    for (int i = 0; i < length; i++) {
      target[i] += delta[i];
    }
  }

  /** SwiGLU's gating in place: {@code gate[i] = silu(gate[i]) * up[i]} for i in [from, to). */
  public static void swiGlu(float[] gate, float[] up, int from, int to) {
    for (int i = from; i < to; i++) {
      float g = gate[i];
      gate[i] = g * (1.0f / (1.0f + (float) Math.exp(-g))) * up[i];
    }
  }

  /** Softmax in place over {@code values[0 .. length)}. */
  public static void softmax(float[] values, int length) {
    float max = Float.NEGATIVE_INFINITY;
    for (int p = 0; p < length; p++) {
      max = Math.max(max, values[p]);
    }
    float sum = 0f;
    for (int p = 0; p < length; p++) {
      float e = (float) Math.exp(values[p] - max);
      values[p] = e;
      sum += e;
    }
    for (int p = 0; p < length; p++) {
      values[p] /= sum;
    }
  }
}
