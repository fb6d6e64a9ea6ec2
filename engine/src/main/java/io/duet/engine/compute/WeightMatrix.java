package io.duet.engine.compute;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.Objects;

/**
 * A row-major matrix of weights that lives outside the Java heap (a region of the memory-mapped
 * checkpoint, or a copy of one), in one of the {@link WeightFormat}s. Row {@code r} holds the
 * weights producing output {@code r}. The kernels widen each weight to float32 as they read it;
 * {@link #get} is that widening, one weight at a time. Safe for concurrent readers: every access
 * is absolute.
 */
public final class WeightMatrix {

  /**
   * The largest model whose weights stay in the CPU caches between forward passes. Measured with
   * batched matmuls of 12 tokens over a whole model's matrices: reading rows in place instead of
   * pulling them into cache first was 3-8 % faster for a 1 MB model (14-16 % at 5 tokens), even
   * at 8.6 MB, and slower from 19 MB (1.5x at 60 MB).
   */
  public static final long CACHE_RESIDENT_MODEL_BYTES = 4L << 20;

  private final WeightFormat format;
  private final ByteBuffer data;
  /** F32 only: the weights as floats, for the embedding look-up. */
  private final FloatBuffer floats;
  /** BF16 only: the weights' bits, for the kernels' bulk copies. */
  private final ShortBuffer shorts;
  /** The bytes as the vector kernels load them; null without the Vector API module. */
  private final Object vectorView;
  private final int rows;
  private final int cols;
  /** FP8 only: the block scales times {@link WeightFormat#E4M3_BIAS_CORRECTION}, row-major. */
  private final float[] kernelScales;
  private final int blockRows;
  /** Columns of one FP8 block; for the other formats the whole row, so a row is one segment. */
  private final int segmentCols;
  private final int scaleCols;
  /** See {@link #rowEnds()}; null when rows are whole vectors or not float32. */
  private final float[] rowEnds;
  /** See {@link #cacheResident()}. */
  private final boolean cacheResident;

  /** A float32 matrix over {@code data} (little-endian, {@code rows * cols * 4} bytes). */
  public WeightMatrix(ByteBuffer data, int rows, int cols) {
    this(WeightFormat.F32, data, rows, cols, null, 1, cols);
  }

  private WeightMatrix(WeightFormat format, ByteBuffer data, int rows, int cols,
      float[] kernelScales, int blockRows, int segmentCols) {
    if ((long) rows * cols * format.bytes() != data.capacity()) {
      throw new IllegalArgumentException(format + " matrix " + rows + "x" + cols
          + " does not fit a buffer of " + data.capacity() + " bytes");
    }
    this.format = format;
    this.data = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    this.floats = format == WeightFormat.F32 ? this.data.asFloatBuffer() : null;
    this.shorts = format == WeightFormat.BF16 ? this.data.asShortBuffer() : null;
    // Only touch the vector classes when their module is there, so the scalar path never links them.
    this.vectorView = KernelsProvider.vectorModulePresent() ? WeightVectors.view(this.data) : null;
    this.rows = rows;
    this.cols = cols;
    this.kernelScales = kernelScales;
    this.blockRows = blockRows;
    this.segmentCols = Math.max(1, segmentCols);
    this.scaleCols = (cols + this.segmentCols - 1) / this.segmentCols;
    this.rowEnds = format != WeightFormat.F32 || cols % Kernels.LANES == 0 ? null : copyRowEnds();
    this.cacheResident = false;
  }

  /** {@code other}'s weights, marked as staying in the CPU caches. */
  private WeightMatrix(WeightMatrix other) {
    this.format = other.format;
    this.data = other.data;
    this.floats = other.floats;
    this.shorts = other.shorts;
    this.vectorView = other.vectorView;
    this.rows = other.rows;
    this.cols = other.cols;
    this.kernelScales = other.kernelScales;
    this.blockRows = other.blockRows;
    this.segmentCols = other.segmentCols;
    this.scaleCols = other.scaleCols;
    this.rowEnds = other.rowEnds;
    this.cacheResident = true;
  }

  /**
   * The same weights, marked as staying in the CPU caches from one forward pass to the next:
   * their model's weights all fit in {@link #CACHE_RESIDENT_MODEL_BYTES}. Batched kernels read
   * such a matrix in place; other matrices they first pull into cache a block of rows at a time,
   * which pays for a model read from memory and only costs for one that never leaves the caches.
   */
  public WeightMatrix cacheResident() {
    return cacheResident ? this : new WeightMatrix(this);
  }

  /** See {@link #cacheResident()}. */
  public boolean isCacheResident() {
    return cacheResident;
  }

  /** A bfloat16 matrix over {@code data} ({@code rows * cols * 2} bytes). */
  public static WeightMatrix bf16(ByteBuffer data, int rows, int cols) {
    return new WeightMatrix(WeightFormat.BF16, data, rows, cols, null, 1, cols);
  }

  /**
   * An e4m3 matrix over {@code data} ({@code rows * cols} bytes) whose weight {@code [r][c]} is
   * {@code e4m3[r][c] * scales[r / blockRows][c / blockCols]} ({@code scales} row-major, one row
   * per started block of rows).
   *
   * @throws IllegalArgumentException unless {@link #fp8Fits} holds
   */
  public static WeightMatrix fp8(ByteBuffer data, int rows, int cols, float[] scales,
      int blockRows, int blockCols) {
    if (!fp8Fits(scales, blockCols)) {
      throw new IllegalArgumentException("FP8 blocks of " + blockCols + " columns or scales "
          + "of 2^8 or more cannot be read in place");
    }
    int scaleRows = (rows + blockRows - 1) / blockRows;
    int scaleCols = (cols + blockCols - 1) / blockCols;
    if (scales.length != scaleRows * scaleCols) {
      throw new IllegalArgumentException(rows + "x" + cols + " in blocks of " + blockRows + "x"
          + blockCols + " needs " + scaleRows * scaleCols + " scales, not " + scales.length);
    }
    float[] kernelScales = new float[scales.length];
    for (int i = 0; i < scales.length; i++) {
      kernelScales[i] = scales[i] * WeightFormat.E4M3_BIAS_CORRECTION;
    }
    return new WeightMatrix(WeightFormat.FP8_E4M3, data, rows, cols, kernelScales, blockRows,
        blockCols);
  }

  /**
   * Whether the kernels can read FP8 weights with these block scales in place: a block must
   * span whole vectors ({@link Kernels#LANES} columns) and each scale times {@code 2^120} must be
   * a finite float (any scale below 2^8 is; DeepSeek-V3's are below 1). Where not, the loader
   * converts the matrix to float32 instead.
   */
  public static boolean fp8Fits(float[] scales, int blockCols) {
    if (blockCols % Kernels.LANES != 0) {
      return false;
    }
    for (float scale : scales) {
      if (!Float.isFinite(scale * WeightFormat.E4M3_BIAS_CORRECTION)) {
        return false;
      }
    }
    return true;
  }

  public WeightFormat format() {
    return format;
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

  /** The memory this matrix holds: its weights' bytes and, for FP8, its block scales. */
  public long bytes() {
    return (long) rows * cols * format.bytes()
        + (kernelScales == null ? 0 : (long) kernelScales.length * Float.BYTES);
  }

  /** Columns that share one scale: an FP8 block's width, else the whole row. */
  int segmentCols() {
    return segmentCols;
  }

  /**
   * The factor that turns the raw widened weights of row {@code row} from column
   * {@code segmentStart} on into their values: the block scale times {@code 2^120} for FP8
   * (see {@link WeightFormat#E4M3_BIAS_CORRECTION}), 1 otherwise.
   */
  float kernelScale(int row, int segmentStart) {
    return kernelScales == null ? 1f
        : kernelScales[row / blockRows * scaleCols + segmentStart / segmentCols];
  }

  /**
   * FP8 only: where row {@code row}'s block scales start in {@link #kernelScales}, one per
   * segment of {@link #segmentCols} columns.
   */
  int scaleRowStart(int row) {
    return row / blockRows * scaleCols;
  }

  /** FP8 only: the scales {@link #kernelScale} reads, row-major; null for other formats. */
  float[] kernelScales() {
    return kernelScales;
  }

  /**
   * Throws {@link IndexOutOfBoundsException} unless {@code [from, to)} is a range of this matrix's
   * rows. The vector kernels call it before reading rows with unchecked loads.
   */
  void checkRowRange(int from, int to) {
    Objects.checkFromToIndex(from, to, rows);
  }

  /** The weight at {@code [row][col]} as a float, bit for bit what the kernels multiply by. */
  public float get(int row, int col) {
    int index = row * cols + col;
    return switch (format) {
      case F32 -> floats.get(index);
      case BF16 -> WeightFormat.bf16ToFloat(data.getShort(index * 2));
      case FP8_E4M3 -> Float.intBitsToFloat(WeightFormat.e4m3Bits(data.get(index)))
          * kernelScale(row, col);
    };
  }

  /** Copies row {@code row} of an FP8 matrix, its raw bytes, into {@code dst}. */
  void rawRow(int row, byte[] dst) {
    data.get(row * cols, dst, 0, cols);
  }

  /** Copies row {@code row} of a BF16 matrix, its raw bits, into {@code dst}. */
  void rawRow(int row, short[] dst) {
    shorts.get(row * cols, dst, 0, cols);
  }

  /** Copies one row onto the heap as floats (the embedding look-up). */
  public void copyRow(int row, float[] dst, int dstOffset) {
    if (floats != null) {
      floats.get(row * cols, dst, dstOffset, cols);
      return;
    }
    for (int c = 0; c < cols; c++) {
      dst[dstOffset + c] = get(row, c);
    }
  }
}
