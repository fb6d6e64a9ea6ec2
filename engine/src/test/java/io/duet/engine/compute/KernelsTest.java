package io.duet.engine.compute;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The fast kernels ({@link KernelsProvider#best()}, the Vector API ones under surefire) must give
 * exactly the bits of the scalar kernels, which follow the canonical accumulation order of the
 * {@link Kernels} javadoc, and both must be close to a double-precision reference.
 */
class KernelsTest {

  /** Never produced by a kernel: marks output cells a call must not touch. */
  private static final float SENTINEL = Float.intBitsToFloat(0x7fc0dead);

  private static Kernels best;
  private static Kernels scalar;

  @BeforeAll
  static void pickKernels() {
    best = KernelsProvider.best();
    scalar = KernelsProvider.scalar();
  }

  @Test
  void bestKernelsAreTheVectorApiWhenTheModuleIsPresent() {
    assertTrue(ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent(),
        "surefire should start the test JVM with --add-modules jdk.incubator.vector");
    assertTrue(best.description().contains("Vector API"),
        "expected the Vector API kernels, got: " + best.description());
    assertTrue(scalar.description().contains("scalar"), scalar.description());
  }

  @Test
  void theKernelsAreChosenOncePerJvmSoEnginesOpenedLaterShareThem() {
    // A self-check per engine ran the compiled kernels on odd shapes and made the JIT throw
    // their code away; a second engine in one JVM then prefilled at half speed.
    assertTrue(KernelsProvider.best() == best, "best() returns the same kernels every time");
  }

  @Test
  void weightsLoadUncheckedWhenTheJvmExportsTheVectorIntrinsics() {
    assertTrue(best.description().contains("unchecked off-heap loads"),
        "surefire should export jdk.internal.vm.vector; got: " + best.description());
  }

  @Test
  void aRowRangeOutsideTheMatrixIsRefusedBeforeAnythingIsRead() {
    Random random = new Random(3);
    WeightMatrix w = randomMatrix(random, 4, 16, true);
    float[] x = randomVector(random, 16);
    for (Kernels kernels : List.of(best, scalar)) {
      for (int[] range : new int[][] {{0, 5}, {-1, 2}, {3, 2}, {4, 9}}) {
        float[] out = filled(16);
        assertThrows(IndexOutOfBoundsException.class,
            () -> kernels.matmul(w, x, 16, 1, out, 0, 4, range[0], range[1]),
            kernels.description() + " rows " + range[0] + ".." + range[1]);
      }
    }
  }

  @Test
  void kernelsThatCannotLinkOnThisJdkFallBackToScalarSayingWhy() {
    Kernels broken = new DelegatingKernels(scalar) {
      @Override
      public void matmul(WeightMatrix w, float[] x, int xStride, int tokens, float[] out,
          int outOffset, int outStride, int rowFrom, int rowTo) {
        throw new NoSuchMethodError("FloatVector.fromByteBuffer");
      }
    };
    Kernels chosen = KernelsProvider.verified(broken);
    assertTrue(chosen.description().startsWith("scalar"), chosen.description());
    assertTrue(chosen.description().contains("fromByteBuffer"), chosen.description());
  }

  @Test
  void kernelsThatDisagreeWithTheScalarOnesAreNotUsed() {
    Kernels sloppy = new DelegatingKernels(scalar) {
      @Override
      public float dot(float[] a, int aOffset, float[] b, int bOffset, int length) {
        return Math.nextUp(super.dot(a, aOffset, b, bOffset, length));
      }
    };
    Kernels chosen = KernelsProvider.verified(sloppy);
    assertTrue(chosen.description().contains("disagree"), chosen.description());
    assertTrue(KernelsProvider.verified(best) == best, "the real kernels pass their self-check");
  }

  /** Forwards every call, so a test can break one method. */
  private static class DelegatingKernels implements Kernels {
    private final Kernels target;

    DelegatingKernels(Kernels target) {
      this.target = target;
    }

    @Override
    public String description() {
      return "test kernels";
    }

    @Override
    public void matmul(WeightMatrix w, float[] x, int xOffset, int xStride, int tokens,
        float[] out, int outOffset, int outStride, int rowFrom, int rowTo) {
      target.matmul(w, x, xOffset, xStride, tokens, out, outOffset, outStride, rowFrom, rowTo);
    }

    @Override
    public float dot(float[] a, int aOffset, float[] b, int bOffset, int length) {
      return target.dot(a, aOffset, b, bOffset, length);
    }

    @Override
    public void accumulateRows(float[] weights, int wOffset, float[] rows, int rowsOffset,
        int rowCount, int length, float[] y, int yOffset) {
      target.accumulateRows(weights, wOffset, rows, rowsOffset, rowCount, length, y, yOffset);
    }
  }

  // ---------------------------------------------------------------------------------- matmul

  static Stream<Arguments> matmulShapes() {
    List<Arguments> cases = new ArrayList<>();
    for (int tokens : new int[] {1, 2, 3, 4, 5, 6, 7, 8, 33}) {
      for (int cols : new int[] {8, 64, 172, 288, 768}) {
        cases.add(Arguments.of(tokens, cols, false));
        cases.add(Arguments.of(tokens, cols, true));
      }
    }
    return cases.stream();
  }

  /**
   * {@code strided}: a heap weight buffer, padded x rows and output rows, non-zero input and
   * output offsets and a row range starting and ending mid-matrix; otherwise a direct buffer, dense
   * rows and the whole matrix.
   */
  @ParameterizedTest(name = "tokens={0} cols={1} strided={2}")
  @MethodSource("matmulShapes")
  void matmulIsBitIdenticalToScalarAndCloseToDoubleReference(int tokens, int cols,
      boolean strided) {
    Random random = new Random(31L * tokens + cols + (strided ? 7 : 0));
    int rows = 37;
    WeightMatrix w = randomMatrix(random, rows, cols, !strided);
    int xStride = strided ? cols + 5 : cols;
    int xOffset = strided ? 11 : 0;
    int rowFrom = strided ? 3 : 0;
    int rowTo = strided ? rows - 5 : rows;
    int outOffset = strided ? 7 : 0;
    int outStride = strided ? rows + outOffset + 3 : rows;
    // x ends exactly after the last token's row, so a tail read past it would throw.
    float[] x = randomVector(random, xOffset + (tokens - 1) * xStride + cols);

    float[] fast = filled(tokens * outStride);
    float[] reference = filled(tokens * outStride);
    best.matmul(w, x, xOffset, xStride, tokens, fast, outOffset, outStride, rowFrom, rowTo);
    scalar.matmul(w, x, xOffset, xStride, tokens, reference, outOffset, outStride, rowFrom,
        rowTo);

    for (int i = 0; i < fast.length; i++) {
      assertBitsEqual(reference[i], fast[i], "out[" + i + "]");
    }
    for (int t = 0; t < tokens; t++) {
      for (int n = 0; n < outStride; n++) {
        int index = t * outStride + n;
        int row = n - outOffset;
        if (row < rowFrom || row >= rowTo) {
          assertBitsEqual(SENTINEL, fast[index], "cell outside the row range was written: " + index);
          continue;
        }
        float[] wRow = new float[cols];
        w.copyRow(row, wRow, 0);
        String where = "token " + t + " row " + row;
        int xAt = xOffset + t * xStride;
        assertBitsEqual(canonicalDot(wRow, 0, x, xAt, cols), fast[index], where);
        assertCloseToDouble(wRow, 0, x, xAt, cols, fast[index], where);
      }
    }
  }

  /**
   * Batched matmuls pull rows into cache in blocks, or read a cache-resident matrix in place:
   * ranges over several blocks, odd ends, both ways.
   */
  @ParameterizedTest(name = "tokens={0} cols={1} rows [{2}, {3}) cache-resident={4}")
  @CsvSource({"8, 288, 0, 150, false", "12, 288, 1, 149, false", "9, 172, 3, 134, false",
      "33, 64, 0, 129, false", "12, 288, 1, 149, true", "9, 172, 3, 134, true",
      "5, 64, 0, 151, true"})
  void matmulOverSeveralRowBlocksIsBitIdenticalToScalar(int tokens, int cols, int rowFrom,
      int rowTo, boolean cacheResident) {
    Random random = new Random(97L * tokens + cols + rowFrom);
    int rows = 151;
    WeightMatrix stored = randomMatrix(random, rows, cols, true);
    WeightMatrix w = cacheResident ? stored.cacheResident() : stored;
    assertEquals(cacheResident, w.isCacheResident());
    float[] x = randomVector(random, tokens * cols);
    float[] fast = filled(tokens * rows);
    float[] reference = filled(tokens * rows);
    best.matmul(w, x, cols, tokens, fast, 0, rows, rowFrom, rowTo);
    scalar.matmul(stored, x, cols, tokens, reference, 0, rows, rowFrom, rowTo);
    for (int i = 0; i < fast.length; i++) {
      assertBitsEqual(reference[i], fast[i], "out[" + i + "]");
    }
  }

  @ParameterizedTest(name = "tokens={0}")
  @MethodSource("batchSizes")
  void aRowComputedAloneEqualsTheSameRowInsideABatch(int tokens) {
    Random random = new Random(tokens);
    for (int cols : new int[] {64, 172, 768}) {
      int rows = 21;
      WeightMatrix w = randomMatrix(random, rows, cols, true);
      float[] x = randomVector(random, tokens * cols);
      float[] batched = new float[tokens * rows];
      best.matmul(w, x, cols, tokens, batched, 0, rows, 0, rows);
      for (int t = 0; t < tokens; t++) {
        float[] single = new float[cols];
        System.arraycopy(x, t * cols, single, 0, cols);
        float[] alone = new float[rows];
        best.matmul(w, single, cols, 1, alone, 0, rows, 0, rows);
        for (int n = 0; n < rows; n++) {
          assertBitsEqual(alone[n], batched[t * rows + n],
              "cols " + cols + " token " + t + " of " + tokens + " row " + n);
        }
        // ... and computing one row on its own (a parallel chunk of one row) changes nothing.
        float[] oneRow = filled(rows);
        best.matmul(w, single, cols, 1, oneRow, 0, rows, rows / 2, rows / 2 + 1);
        assertBitsEqual(alone[rows / 2], oneRow[rows / 2], "single-row range");
      }
    }
  }

  static Stream<Integer> batchSizes() {
    return Stream.of(2, 3, 4, 5, 8, 9, 33);
  }

  @Test
  void matmulWithAnEmptyRowRangeWritesNothing() {
    Random random = new Random(5);
    WeightMatrix w = randomMatrix(random, 4, 16, false);
    float[] x = randomVector(random, 3 * 16);
    for (Kernels kernels : List.of(best, scalar)) {
      float[] out = filled(3 * 4);
      kernels.matmul(w, x, 16, 3, out, 0, 4, 2, 2);
      for (float value : out) {
        assertBitsEqual(SENTINEL, value, kernels.description());
      }
    }
  }

  // ------------------------------------------------------------------ dot, accumulateRows

  @Test
  void dotIsBitIdenticalToScalarAndCloseToDoubleReference() {
    Random random = new Random(11);
    for (int length = 1; length <= 70; length++) {
      for (int[] offsets : new int[][] {{0, 0}, {3, 0}, {0, 5}, {length % 7, 1 + length % 3}}) {
        int aOffset = offsets[0];
        int bOffset = offsets[1];
        // Arrays end exactly at offset + length: a masked tail must not read past them.
        float[] a = randomVector(random, aOffset + length);
        float[] b = randomVector(random, bOffset + length);
        String where = "length " + length + " offsets " + aOffset + "," + bOffset;
        float fast = best.dot(a, aOffset, b, bOffset, length);
        float reference = scalar.dot(a, aOffset, b, bOffset, length);
        assertBitsEqual(reference, fast, where);
        assertBitsEqual(canonicalDot(a, aOffset, b, bOffset, length), reference, where);
        assertCloseToDouble(a, aOffset, b, bOffset, length, fast, where);
      }
    }
  }

  @Test
  void dotOfNothingIsZero() {
    float[] a = {1f, 2f};
    assertBitsEqual(0f, best.dot(a, 0, a, 0, 0), "best");
    assertBitsEqual(0f, scalar.dot(a, 0, a, 0, 0), "scalar");
  }

  @Test
  void accumulateRowsIsBitIdenticalToScalarAndToOneFusedMultiplyAddPerRowInOrder() {
    Random random = new Random(13);
    for (int length = 1; length <= 70; length++) {
      for (int rowCount : new int[] {0, 1, 2, 7, 16}) {
        int wOffset = length % 4;
        int rowsOffset = 1 + length % 5;
        int yOffset = 2 + length % 3;
        float[] weights = randomVector(random, wOffset + rowCount);
        // rows and y end exactly after the range: a tail read past them would throw.
        float[] rows = randomVector(random, rowsOffset + rowCount * length);
        float[] y0 = randomVector(random, yOffset + length + 4);
        float[] fast = y0.clone();
        float[] reference = y0.clone();
        best.accumulateRows(weights, wOffset, rows, rowsOffset, rowCount, length, fast, yOffset);
        scalar.accumulateRows(weights, wOffset, rows, rowsOffset, rowCount, length, reference,
            yOffset);
        for (int i = 0; i < y0.length; i++) {
          String where = "length " + length + " rows " + rowCount + " y[" + i + "]";
          assertBitsEqual(reference[i], fast[i], where);
          int k = i - yOffset;
          float expected = y0[i];
          if (k >= 0 && k < length) {
            for (int r = 0; r < rowCount; r++) {
              expected = Math.fma(weights[wOffset + r], rows[rowsOffset + r * length + k], expected);
            }
          }
          assertBitsEqual(expected, fast[i], where);
        }
      }
    }
  }

  // --------------------------------------------------------------------------------- helpers

  /** The {@link Kernels} contract written out independently of the implementations. */
  private static float canonicalDot(float[] a, int aOffset, float[] b, int bOffset, int length) {
    float[] partial = new float[Kernels.LANES];
    for (int k = 0; k < length; k++) {
      int lane = k % Kernels.LANES;
      partial[lane] = Math.fma(a[aOffset + k], b[bOffset + k], partial[lane]);
    }
    return ((partial[0] + partial[1]) + (partial[2] + partial[3]))
        + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
  }

  /**
   * Float accumulation of n products in 8 interleaved FMA chains and a 3-level tree has an error
   * of at most about {@code (n / 8 + 3) * 2^-24 * sum |a_k b_k|}; twice that is the bound here.
   * The bound is relative to the sum of magnitudes because cancellation makes any bound relative
   * to the result itself meaningless.
   */
  private static void assertCloseToDouble(float[] a, int aOffset, float[] b, int bOffset,
      int length, float actual, String where) {
    double exact = 0;
    double magnitude = 0;
    for (int k = 0; k < length; k++) {
      double product = (double) a[aOffset + k] * b[bOffset + k];
      exact += product;
      magnitude += Math.abs(product);
    }
    double bound = (length / 8.0 + 4) * 0x1p-23 * magnitude + Float.MIN_NORMAL;
    if (!(Math.abs(actual - exact) <= bound)) {
      fail(where + ": " + actual + " is " + Math.abs(actual - exact) + " from the exact " + exact
          + " (bound " + bound + ")");
    }
  }

  private static void assertBitsEqual(float expected, float actual, String where) {
    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual),
        () -> where + ": expected " + expected + " but was " + actual);
  }

  private static WeightMatrix randomMatrix(Random random, int rows, int cols, boolean direct) {
    int bytes = rows * cols * Float.BYTES;
    ByteBuffer data = (direct ? ByteBuffer.allocateDirect(bytes) : ByteBuffer.allocate(bytes))
        .order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < rows * cols; i++) {
      data.putFloat(i * Float.BYTES, random.nextFloat() * 2f - 1f);
    }
    return new WeightMatrix(data, rows, cols);
  }

  private static float[] randomVector(Random random, int length) {
    float[] v = new float[length];
    for (int i = 0; i < length; i++) {
      v[i] = random.nextFloat() * 2f - 1f;
    }
    return v;
  }

  private static float[] filled(int length) {
    float[] v = new float[length];
    java.util.Arrays.fill(v, SENTINEL);
    return v;
  }
}
