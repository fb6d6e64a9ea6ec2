package io.duet.engine.compute;

import java.nio.ByteBuffer;

/**
 * Plain-Java kernels, used where the Vector API is absent. They follow the canonical
 * accumulation order exactly, so they produce the same bits as {@link VectorKernels} on 256-bit
 * hardware and serve as the reference the vector kernels are tested against.
 */
final class ScalarKernels implements Kernels {

  private final String reason;

  ScalarKernels(String reason) {
    this.reason = reason;
  }

  @Override
  public String description() {
    return "scalar Java kernels (" + reason + ")";
  }

  @Override
  public void matmul(WeightMatrix w, float[] x, int xOffset, int xStride, int tokens,
      float[] out, int outOffset, int outStride, int rowFrom, int rowTo) {
    w.checkRowRange(rowFrom, rowTo);
    ByteBuffer data = w.data();
    boolean f32 = w.format() == WeightFormat.F32;
    int cols = w.cols();
    float[] partial = new float[LANES];
    for (int n = rowFrom; n < rowTo; n++) {
      int rowByte = n * cols * Float.BYTES;
      for (int t = 0; t < tokens; t++) {
        java.util.Arrays.fill(partial, 0f);
        int xBase = xOffset + t * xStride;
        for (int k = 0; k < cols; k++) {
          float wk = f32 ? data.getFloat(rowByte + k * Float.BYTES) : w.get(n, k);
          partial[k % LANES] = Math.fma(wk, x[xBase + k], partial[k % LANES]);
        }
        out[t * outStride + outOffset + n] = Kernels.sumLanes(partial);
      }
    }
  }

  @Override
  public float dot(float[] a, int aOffset, float[] b, int bOffset, int length) {
    float[] partial = new float[LANES];
    for (int k = 0; k < length; k++) {
      partial[k % LANES] = Math.fma(a[aOffset + k], b[bOffset + k], partial[k % LANES]);
    }
    return Kernels.sumLanes(partial);
  }

  @Override
  public void accumulateRows(float[] weights, int wOffset, float[] rows, int rowsOffset,
      int rowCount, int length, float[] y, int yOffset) {
    for (int i = 0; i < length; i++) {
      float acc = y[yOffset + i];
      for (int r = 0; r < rowCount; r++) {
        acc = Math.fma(weights[wOffset + r], rows[rowsOffset + r * length + i], acc);
      }
      y[yOffset + i] = acc;
    }
  }
}
