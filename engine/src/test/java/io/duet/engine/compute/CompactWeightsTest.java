package io.duet.engine.compute;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * BF16 and FP8 matrices read in place must give exactly the bits of the float32 matrix of their
 * dequantized values, in both kernels and for any batch: the widening is exact (a bfloat16 is a
 * float's upper half; an e4m3 value times its block scale is rounded once, as the dequantizing
 * loader rounds it) and the products then accumulate in the canonical order. Exact equality is
 * what lets a checkpoint served with its weights compact decode to the very tokens it decodes
 * with them converted at load.
 */
class CompactWeightsTest {

  private static final Kernels BEST = KernelsProvider.best();
  private static final Kernels SCALAR = KernelsProvider.scalar();

  @Test
  void everyFiniteE4m3CodeDecodesToItsValue() {
    for (int code = 0; code < 256; code++) {
      int exponent = (code >>> 3) & 0xf;
      int mantissa = code & 7;
      float magnitude = exponent == 0 ? mantissa / 8f * 0x1p-6f
          : (1 + mantissa / 8f) * (float) Math.scalb(1.0, exponent - 7);
      float expected = (code & 0x80) != 0 ? -magnitude : magnitude;
      if (exponent == 0xf && mantissa == 7) {
        assertTrue(Float.isNaN(WeightFormat.e4m3ToFloat(code)), "code " + code);
      } else {
        assertEquals(expected, WeightFormat.e4m3ToFloat(code), "code " + code);
      }
    }
    assertEquals(0x1p-9f, WeightFormat.e4m3ToFloat(0x01), "smallest subnormal");
    assertEquals(-448f, WeightFormat.e4m3ToFloat(0xfe), "largest negative");
  }

  /** rows, cols, FP8 block rows x cols: blocks that cut rows and columns short, odd tails. */
  @ParameterizedTest
  @CsvSource({"1, 8, 128, 128", "3, 136, 128, 128", "130, 200, 128, 128", "257, 131, 128, 128",
      "9, 64, 3, 16", "6, 13, 4, 8", "64, 1, 128, 128"})
  void fp8MatmulEqualsTheFloat32MatrixOfItsDequantizedValues(int rows, int cols, int blockRows,
      int blockCols) {
    Random random = new Random(rows * 31L + cols);
    byte[] codes = new byte[rows * cols];
    for (int i = 0; i < codes.length; i++) {
      // Every code but the two NaNs, subnormals (exponent 0) and zeros of both signs included.
      int code;
      do {
        code = random.nextInt(256);
      } while ((code & 0x7f) == 0x7f);
      codes[i] = (byte) code;
    }
    int scaleRows = (rows + blockRows - 1) / blockRows;
    int scaleCols = (cols + blockCols - 1) / blockCols;
    float[] scales = new float[scaleRows * scaleCols];
    for (int i = 0; i < scales.length; i++) {
      scales[i] = (float) Math.scalb(random.nextFloat() + 0.5, -random.nextInt(12));
    }
    float[] dequantized = new float[rows * cols];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        dequantized[r * cols + c] = WeightFormat.e4m3ToFloat(codes[r * cols + c])
            * scales[r / blockRows * scaleCols + c / blockCols];
      }
    }
    ByteBuffer data = ByteBuffer.allocateDirect(codes.length).put(codes).flip();
    WeightMatrix fp8 = WeightMatrix.fp8(data, rows, cols, scales, blockRows, blockCols);
    assertEquals(WeightFormat.FP8_E4M3, fp8.format());
    assertEquals((long) rows * cols + scales.length * 4L, fp8.bytes());
    assertSameProducts(fp8, float32(dequantized, rows, cols), random);
  }

  @ParameterizedTest
  @CsvSource({"1, 8", "5, 131", "130, 200", "33, 7"})
  void bf16MatmulEqualsTheFloat32MatrixOfItsValues(int rows, int cols) {
    Random random = new Random(rows * 17L + cols);
    ByteBuffer data = ByteBuffer.allocateDirect(rows * cols * 2).order(ByteOrder.LITTLE_ENDIAN);
    float[] values = new float[rows * cols];
    for (int i = 0; i < values.length; i++) {
      // Exponents 0 (subnormals) to 0xfe: every finite bfloat16 bit pattern can come up.
      int bits = random.nextInt(1 << 16);
      if (((bits >>> 7) & 0xff) == 0xff) {
        bits &= ~(1 << 7);
      }
      data.putShort(i * 2, (short) bits);
      values[i] = Float.intBitsToFloat(bits << 16);
    }
    WeightMatrix bf16 = WeightMatrix.bf16(data, rows, cols);
    assertEquals((long) rows * cols * 2, bf16.bytes());
    assertSameProducts(bf16, float32(values, rows, cols), random);
  }

  @Test
  void fp8BlocksMustSpanWholeVectorsAndScalesMustStayFiniteTimesTheBiasCorrection() {
    assertTrue(WeightMatrix.fp8Fits(new float[] {1e-3f, 100f}, 128));
    assertFalse(WeightMatrix.fp8Fits(new float[] {1e-3f}, 12), "a block of 12 columns");
    assertFalse(WeightMatrix.fp8Fits(new float[] {1e-3f, 256f}, 128), "256 * 2^120 overflows");
    assertThrows(IllegalArgumentException.class,
        () -> WeightMatrix.fp8(ByteBuffer.allocateDirect(16), 2, 8, new float[] {300f}, 128, 128));
    assertThrows(IllegalArgumentException.class,
        () -> WeightMatrix.fp8(ByteBuffer.allocateDirect(16), 2, 8, new float[2], 128, 128),
        "one block needs one scale");
  }

  /**
   * {@code compact} against {@code reference} in every kernel, for batches of 1 to 9 tokens and
   * row ranges that start odd: the same bits, and each token's products those it gets alone.
   */
  private static void assertSameProducts(WeightMatrix compact, WeightMatrix reference,
      Random random) {
    int rows = compact.rows();
    int cols = compact.cols();
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        assertEquals(reference.get(r, c), compact.get(r, c), "weight [" + r + "][" + c + "]");
      }
    }
    float[] row = new float[cols];
    compact.copyRow(rows - 1, row, 0);
    for (int c = 0; c < cols; c++) {
      assertEquals(reference.get(rows - 1, c), row[c], "copied row, column " + c);
    }
    int from = rows > 2 ? 1 : 0;
    for (int tokens : new int[] {1, 2, 4, 5, 8, 9}) {
      float[] x = new float[tokens * cols];
      for (int i = 0; i < x.length; i++) {
        x[i] = random.nextFloat() * 2f - 1f;
      }
      float[] expected = new float[tokens * rows];
      BEST.matmul(reference, x, cols, tokens, expected, 0, rows, from, rows);
      for (Kernels kernels : List.of(BEST, SCALAR)) {
        float[] out = new float[tokens * rows];
        kernels.matmul(compact, x, cols, tokens, out, 0, rows, from, rows);
        for (int t = 0; t < tokens; t++) {
          float[] alone = new float[rows];
          kernels.matmul(compact, x, t * cols, cols, 1, alone, 0, rows, from, rows);
          for (int n = from; n < rows; n++) {
            String where = kernels.description() + ", " + tokens + " tokens, token " + t
                + ", row " + n;
            assertEquals(Float.floatToRawIntBits(expected[t * rows + n]),
                Float.floatToRawIntBits(out[t * rows + n]), where);
            assertEquals(Float.floatToRawIntBits(out[t * rows + n]),
                Float.floatToRawIntBits(alone[n]), where + " alone");
          }
        }
      }
    }
  }

  private static WeightMatrix float32(float[] values, int rows, int cols) {
    ByteBuffer data = ByteBuffer.allocateDirect(values.length * Float.BYTES)
        .order(ByteOrder.LITTLE_ENDIAN);
    data.asFloatBuffer().put(values);
    return new WeightMatrix(data, rows, cols);
  }
}
