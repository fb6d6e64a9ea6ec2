package io.duet.engine.compute;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Objects;

/**
 * A row-major float32 matrix that lives outside the Java heap (a region of the memory-mapped
 * checkpoint). Row {@code r} holds the weights producing output {@code r}. Safe for concurrent
 * readers: every access is absolute.
 */
public final class WeightMatrix {

  private final ByteBuffer data;
  private final FloatBuffer floats;
  /** The bytes as the vector kernels load them; null without the Vector API module. */
  private final Object vectorView;
  private final int rows;
  private final int cols;
  /** See {@link #rowEnds()}; null when rows are whole vectors. */
  private final float[] rowEnds;

  public WeightMatrix(ByteBuffer data, int rows, int cols) {
    if ((long) rows * cols * Float.BYTES != data.capacity()) {
      throw new IllegalArgumentException(
          "matrix " + rows + "x" + cols + " does not fit a buffer of " + data.capacity() + " bytes");
    }
    this.data = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    this.floats = this.data.asFloatBuffer();
    // Only touch the vector classes when their module is there, so the scalar path never links them.
    this.vectorView = KernelsProvider.vectorModulePresent() ? WeightVectors.view(this.data) : null;
    this.rows = rows;
    this.cols = cols;
    this.rowEnds = cols % Kernels.LANES == 0 ? null : copyRowEnds();
  }

  private float[] copyRowEnds() {
    int whole = cols - cols % Kernels.LANES;
    float[] ends = new float[rows * Kernels.LANES];
    for (int r = 0; r < rows; r++) {
      floats.get(r * cols + whole, ends, r * Kernels.LANES, cols - whole);
    }
    return ends;
  }

  /** The raw little-endian bytes, for the kernels. */
  public ByteBuffer data() {
    return data;
  }

  Object vectorView() {
    return vectorView;
  }

  /**
   * When {@link #cols()} is not a multiple of {@link Kernels#LANES}: each row's last
   * {@code cols % LANES} weights, padded with zeros to LANES floats, row after row on the heap,
   * so that vector kernels read a row's end with one full load rather than a masked one; null
   * otherwise. Copied once: the weights never change.
   */
  float[] rowEnds() {
    return rowEnds;
  }

  public int rows() {
    return rows;
  }

  public int cols() {
    return cols;
  }

  /**
   * Throws {@link IndexOutOfBoundsException} unless {@code [from, to)} is a range of this matrix's
   * rows. The vector kernels call it before reading rows with unchecked loads.
   */
  void checkRowRange(int from, int to) {
    Objects.checkFromToIndex(from, to, rows);
  }

  public float get(int row, int col) {
    return floats.get(row * cols + col);
  }

  /** Copies one row onto the heap (the embedding look-up). */
  public void copyRow(int row, float[] dst, int dstOffset) {
    floats.get(row * cols, dst, dstOffset, cols);
  }
}
