package io.duet.engine.compute;

/**
 * The numeric primitives of the forward pass. Implementations must give bit-identical results
 * for a given output element whatever the batch around it, so that a sequence decodes to the same
 * tokens alone or in a batch: every dot product accumulates in {@link #LANES} interleaved partial
 * sums with fused multiply-add, in increasing index order, and the partial sums are added in one
 * fixed tree order ({@link #sumLanes}).
 */
public interface Kernels {

  /** Width of the canonical accumulation; the vector kernels use it as their lane count. */
  int LANES = 8;

  /** Floats in a 64-byte cache line: the stride of the loads that pull data into cache. */
  int FLOATS_PER_CACHE_LINE = 64 / Float.BYTES;

  /** A name for logs: which backend is in use and why. */
  String description();

  /**
   * {@code out[t * outStride + outOffset + n] = dot(x[t * xStride .. + cols], w.row(n))} for every
   * token {@code t < tokens} and weight row {@code n} in {@code [rowFrom, rowTo)}.
   *
   * @throws IndexOutOfBoundsException if {@code [rowFrom, rowTo)} is not a range of {@code w}'s
   *     rows (checked before any weight is read)
   */
  default void matmul(WeightMatrix w, float[] x, int xStride, int tokens,
      float[] out, int outOffset, int outStride, int rowFrom, int rowTo) {
    matmul(w, x, 0, xStride, tokens, out, outOffset, outStride, rowFrom, rowTo);
  }

  /**
   * {@link #matmul(WeightMatrix, float[], int, int, float[], int, int, int, int)} over tokens
   * that start at {@code x[xOffset]}: token {@code t} is {@code x[xOffset + t * xStride ..]}
   * (the rows a mixture-of-experts layer gathered for one expert, say).
   */
  void matmul(WeightMatrix w, float[] x, int xOffset, int xStride, int tokens,
      float[] out, int outOffset, int outStride, int rowFrom, int rowTo);

  /** Dot product of two heap vectors in the canonical accumulation order. */
  float dot(float[] a, int aOffset, float[] b, int bOffset, int length);

  /**
   * {@code y[yOffset + i] = fma(weights[wOffset + r], rows[rowsOffset + r * length + i], y[...])}
   * for {@code r = 0 .. rowCount - 1} in that order, for every {@code i < length}: the weighted sum
   * of attention values over one KV block's consecutive positions.
   */
  void accumulateRows(float[] weights, int wOffset, float[] rows, int rowsOffset, int rowCount,
      int length, float[] y, int yOffset);

  /** The fixed reduction order of the {@link #LANES} partial sums. */
  static float sumLanes(float[] p) {
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
  }
}
