package io.duet.engine.compute;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Kernels on the incubating Vector API with 256-bit float vectors (one vector = {@link #LANES}
 * canonical partial sums). For one token the matrix product walks the weights one row at a time
 * (a single sequential stream, which the hardware prefetcher follows best). For several it takes
 * two rows by four tokens at a time, which turns batched decode and prefill into compute-bound
 * work, and eight rows by one token for the tokens left over.
 *
 * <p>Only loaded through {@link KernelsProvider}, so a JVM without the incubator module never
 * links this class.
 */
final class VectorKernels implements Kernels {

  private static final VectorSpecies<Float> S = FloatVector.SPECIES_256;
  private static final VectorSpecies<Integer> I = IntVector.SPECIES_256;
  /** Rows pulled into cache at a time by batched matmuls: 74 KB of a 288-wide matrix. */
  private static final int PULL_BLOCK_ROWS = 64;
  /** Where {@link #pullRows}' loads end up, so the compiler keeps them. */
  @SuppressWarnings("unused")
  private static float pullSink;

  // The canonical reduction tree (Kernels.sumLanes) in three steps of swapping lanes and adding:
  // neighbours, then pairs of them, then halves. Float addition commutes, so lane i plus its
  // partner gives the same bits in either lane.
  private static final VectorShuffle<Float> SWAP_NEIGHBOURS =
      VectorShuffle.fromValues(S, 1, 0, 3, 2, 5, 4, 7, 6);
  private static final VectorShuffle<Float> SWAP_PAIRS =
      VectorShuffle.fromValues(S, 2, 3, 0, 1, 6, 7, 4, 5);
  private static final VectorShuffle<Float> SWAP_HALVES =
      VectorShuffle.fromValues(S, 4, 5, 6, 7, 0, 1, 2, 3);
  private static final VectorMask<Float> ODD_LANES =
      VectorMask.fromValues(S, false, true, false, true, false, true, false, true);
  private static final VectorMask<Float> ODD_PAIRS =
      VectorMask.fromValues(S, false, false, true, true, false, false, true, true);
  private static final VectorMask<Float> UPPER_HALF =
      VectorMask.fromValues(S, false, false, false, false, true, true, true, true);

  static boolean supported() {
    return S.length() == LANES && FloatVector.SPECIES_PREFERRED.length() >= LANES;
  }

  @Override
  public String description() {
    return "Vector API kernels (" + S + ", " + WeightVectors.description() + ")";
  }

  @Override
  public void matmul(WeightMatrix w, float[] x, int xOffset, int xStride, int tokens,
      float[] out, int outOffset, int outStride, int rowFrom, int rowTo) {
    // The weight loads may be unchecked (see WeightVectors): every row read must be in the matrix.
    w.checkRowRange(rowFrom, rowTo);
    if (w.format() != WeightFormat.F32) {
      compactMatmul(w, x, xOffset, xStride, tokens, out, outOffset, outStride, rowFrom, rowTo);
      return;
    }
    Object data = w.vectorView();
    long base = WeightVectors.base(data);
    int cols = w.cols();
    int bound = S.loopBound(cols);
    // A width that is not a multiple of LANES leaves a partial vector at the end of every row and
    // token. Masked loads of it inlined into so many compiler nodes that the tiles' reductions
    // were no longer inlined (and their vectors boxed on every call); the ends are read instead
    // from copies padded with zeros (what a masked load reads), with full loads: the matrix keeps
    // its rows' ends, and the tokens' are copied once per call.
    float[] wTails = w.rowEnds();
    float[] xTails = wTails == null ? null : tokenTails(x, xOffset, xStride, tokens, cols, bound);
    if (tokens == 1) {
      for (int n = rowFrom; n < rowTo; n++) {
        out[outOffset + n] = rowDot(data, base, n * cols * Float.BYTES, bound, x, xOffset,
            wTails, n * LANES, xTails, 0);
      }
      return;
    }
    // Tokens in fours go through 2x4 tiles; the one to three left over, through 8x1 tiles.
    int tiled = tokens - tokens % 4;
    boolean pull = !w.isCacheResident();
    int n = rowFrom;
    while (n < rowTo) {
      // Read from memory, a tile would wait on every miss in turn; an 8x1 tile reads eight rows
      // at once, which the hardware prefetcher follows badly (a third slower than one row at a
      // time on a 37 MB matrix). A block of rows is pulled into cache first, its misses all in
      // flight at once, and the tiles then work from cache. A matrix that never leaves the
      // caches is read in place.
      int blockEnd = Math.min(rowTo, n + PULL_BLOCK_ROWS);
      if (pull) {
        pullRows(data, base, n * cols * Float.BYTES, (blockEnd - n) * cols);
      }
      // Eight rows at a time: their 2x4 tiles, then their 8x1 tiles while the rows are in L1.
      for (; n + 8 <= blockEnd; n += 8) {
        for (int r = n; r < n + 8; r += 2) {
          for (int t = 0; t < tiled; t += 4) {
            tile2x4(data, base, r * cols * Float.BYTES, cols, bound, x, xOffset + t * xStride,
                xStride, out, t * outStride + outOffset + r, outStride, wTails, r * LANES,
                xTails, t * LANES);
          }
        }
        for (int t = tiled; t < tokens; t++) {
          tile8x1(data, base, n * cols * Float.BYTES, cols, bound, x, xOffset + t * xStride, out,
              t * outStride + outOffset + n, wTails, n * LANES, xTails, t * LANES);
        }
      }
      // The block's last rows, fewer than eight (ChunkPlan cuts chunks in eights, but a matrix
      // may end mid-chunk): 2x4 tiles for row pairs, one-row dot products for the rest.
      for (; n + 2 <= blockEnd; n += 2) {
        int rowByte = n * cols * Float.BYTES;
        int t = 0;
        for (; t < tiled; t += 4) {
          tile2x4(data, base, rowByte, cols, bound, x, xOffset + t * xStride, xStride, out,
              t * outStride + outOffset + n, outStride, wTails, n * LANES, xTails, t * LANES);
        }
        for (; t < tokens; t++) {
          int o = t * outStride + outOffset + n;
          int x0 = xOffset + t * xStride;
          out[o] = rowDot(data, base, rowByte, bound, x, x0, wTails, n * LANES, xTails,
              t * LANES);
          out[o + 1] = rowDot(data, base, rowByte + cols * Float.BYTES, bound, x, x0, wTails,
              (n + 1) * LANES, xTails, t * LANES);
        }
      }
      if (n < blockEnd) {
        for (int t = 0; t < tokens; t++) {
          out[t * outStride + outOffset + n] = rowDot(data, base, n * cols * Float.BYTES, bound,
              x, xOffset + t * xStride, wTails, n * LANES, xTails, t * LANES);
        }
        n++;
      }
    }
  }

  /** The values from {@code bound} on of each token's {@code cols}, LANES floats a token. */
  private static float[] tokenTails(float[] x, int xOffset, int xStride, int tokens, int cols,
      int bound) {
    float[] tails = new float[tokens * LANES];
    for (int t = 0; t < tokens; t++) {
      System.arraycopy(x, xOffset + t * xStride + bound, tails, t * LANES, cols - bound);
    }
    return tails;
  }

  /**
   * A BF16 or FP8 matrix. Each row is widened once, whatever the batch, into a per-thread float32
   * row on the heap ({@link WidenedRows}), and multiplied from there. The widened values are the
   * dequantized weights bit for bit, and the products accumulate as the float32 path's, so the
   * results are the float32 matrix's.
   */
  private static void compactMatmul(WeightMatrix w, float[] x, int xOffset, int xStride,
      int tokens, float[] out, int outOffset, int outStride, int rowFrom, int rowTo) {
    int cols = w.cols();
    WidenedRows widened = WidenedRows.of(cols);
    float[] rows = widened.floats;
    int n = rowFrom;
    if (tokens == 1) {
      for (; n < rowTo; n++) {
        widened.widen(w, n, 0);
        out[outOffset + n] = heapRowDot(rows, 0, cols, x, xOffset);
      }
      return;
    }
    for (; n + 2 <= rowTo; n += 2) {
      widened.widen(w, n, 0);
      widened.widen(w, n + 1, cols);
      int t = 0;
      for (; t + 4 <= tokens; t += 4) {
        heapTile2x4(rows, cols, x, xOffset + t * xStride, xStride, out,
            t * outStride + outOffset + n, outStride);
      }
      for (; t < tokens; t++) {
        int o = t * outStride + outOffset + n;
        int x0 = xOffset + t * xStride;
        out[o] = heapRowDot(rows, 0, cols, x, x0);
        out[o + 1] = heapRowDot(rows, cols, cols, x, x0);
      }
    }
    if (n < rowTo) {
      widened.widen(w, n, 0);
      for (int t = 0; t < tokens; t++) {
        out[t * outStride + outOffset + n] = heapRowDot(rows, 0, cols, x, xOffset + t * xStride);
      }
    }
  }

  /**
   * {@link #rowDot} of a widened row on the heap. Kept apart from the off-heap loops, which
   * then compile as they did before compact weights existed.
   */
  private static float heapRowDot(float[] w, int w0, int cols, float[] x, int x0) {
    FloatVector acc = FloatVector.zero(S);
    int bound = S.loopBound(cols);
    int k = 0;
    for (; k < bound; k += LANES) {
      acc = FloatVector.fromArray(S, w, w0 + k).fma(FloatVector.fromArray(S, x, x0 + k), acc);
    }
    if (k < cols) {
      VectorMask<Float> m = S.indexInRange(k, cols);
      acc = FloatVector.fromArray(S, w, w0 + k, m).fma(FloatVector.fromArray(S, x, x0 + k, m),
          acc);
    }
    return sum(acc);
  }

  /** {@link #tile2x4} of two widened rows on the heap ({@code w[0..cols)} and the next). */
  private static void heapTile2x4(float[] w, int cols, float[] x, int x0, int xStride,
      float[] out, int o0, int outStride) {
    int x1 = x0 + xStride;
    int x2 = x1 + xStride;
    int x3 = x2 + xStride;
    FloatVector a0 = FloatVector.zero(S);
    FloatVector a1 = FloatVector.zero(S);
    FloatVector a2 = FloatVector.zero(S);
    FloatVector a3 = FloatVector.zero(S);
    FloatVector b0 = FloatVector.zero(S);
    FloatVector b1 = FloatVector.zero(S);
    FloatVector b2 = FloatVector.zero(S);
    FloatVector b3 = FloatVector.zero(S);
    int bound = S.loopBound(cols);
    int k = 0;
    for (; k < bound; k += LANES) {
      FloatVector wa = FloatVector.fromArray(S, w, k);
      FloatVector wb = FloatVector.fromArray(S, w, cols + k);
      FloatVector xv = FloatVector.fromArray(S, x, x0 + k);
      a0 = wa.fma(xv, a0);
      b0 = wb.fma(xv, b0);
      xv = FloatVector.fromArray(S, x, x1 + k);
      a1 = wa.fma(xv, a1);
      b1 = wb.fma(xv, b1);
      xv = FloatVector.fromArray(S, x, x2 + k);
      a2 = wa.fma(xv, a2);
      b2 = wb.fma(xv, b2);
      xv = FloatVector.fromArray(S, x, x3 + k);
      a3 = wa.fma(xv, a3);
      b3 = wb.fma(xv, b3);
    }
    if (k < cols) {
      VectorMask<Float> m = S.indexInRange(k, cols);
      FloatVector wa = FloatVector.fromArray(S, w, k, m);
      FloatVector wb = FloatVector.fromArray(S, w, cols + k, m);
      FloatVector xv = FloatVector.fromArray(S, x, x0 + k, m);
      a0 = wa.fma(xv, a0);
      b0 = wb.fma(xv, b0);
      xv = FloatVector.fromArray(S, x, x1 + k, m);
      a1 = wa.fma(xv, a1);
      b1 = wb.fma(xv, b1);
      xv = FloatVector.fromArray(S, x, x2 + k, m);
      a2 = wa.fma(xv, a2);
      b2 = wb.fma(xv, b2);
      xv = FloatVector.fromArray(S, x, x3 + k, m);
      a3 = wa.fma(xv, a3);
      b3 = wb.fma(xv, b3);
    }
    out[o0] = sum(a0);
    out[o0 + 1] = sum(b0);
    out[o0 + outStride] = sum(a1);
    out[o0 + outStride + 1] = sum(b1);
    out[o0 + 2 * outStride] = sum(a2);
    out[o0 + 2 * outStride + 1] = sum(b2);
    out[o0 + 3 * outStride] = sum(a3);
    out[o0 + 3 * outStride + 1] = sum(b3);
  }

  /**
   * Two weight rows against four tokens: eight running sums in registers, and each loaded vector
   * (of weights or of a token) feeds two or four of them, so batched work is bound by arithmetic
   * rather than by loads. The rows' and tokens' ends past {@code bound} are in {@code wTails}
   * and {@code xTails} (from {@code wt} and {@code xt}), or there are none when those are null.
   */
  private static void tile2x4(Object w, long base, int rowByte, int cols, int bound, float[] x,
      int x0, int xStride, float[] out, int o0, int outStride, float[] wTails, int wt,
      float[] xTails, int xt) {
    int row1 = rowByte + cols * Float.BYTES;
    int x1 = x0 + xStride;
    int x2 = x1 + xStride;
    int x3 = x2 + xStride;
    FloatVector a0 = FloatVector.zero(S);
    FloatVector a1 = FloatVector.zero(S);
    FloatVector a2 = FloatVector.zero(S);
    FloatVector a3 = FloatVector.zero(S);
    FloatVector b0 = FloatVector.zero(S);
    FloatVector b1 = FloatVector.zero(S);
    FloatVector b2 = FloatVector.zero(S);
    FloatVector b3 = FloatVector.zero(S);
    for (int k = 0; k < bound; k += LANES) {
      FloatVector wa = WeightVectors.load(S, w, base, rowByte + k * Float.BYTES);
      FloatVector wb = WeightVectors.load(S, w, base, row1 + k * Float.BYTES);
      FloatVector xv = FloatVector.fromArray(S, x, x0 + k);
      a0 = wa.fma(xv, a0);
      b0 = wb.fma(xv, b0);
      xv = FloatVector.fromArray(S, x, x1 + k);
      a1 = wa.fma(xv, a1);
      b1 = wb.fma(xv, b1);
      xv = FloatVector.fromArray(S, x, x2 + k);
      a2 = wa.fma(xv, a2);
      b2 = wb.fma(xv, b2);
      xv = FloatVector.fromArray(S, x, x3 + k);
      a3 = wa.fma(xv, a3);
      b3 = wb.fma(xv, b3);
    }
    if (wTails != null) {
      FloatVector wa = FloatVector.fromArray(S, wTails, wt);
      FloatVector wb = FloatVector.fromArray(S, wTails, wt + LANES);
      FloatVector xv = FloatVector.fromArray(S, xTails, xt);
      a0 = wa.fma(xv, a0);
      b0 = wb.fma(xv, b0);
      xv = FloatVector.fromArray(S, xTails, xt + LANES);
      a1 = wa.fma(xv, a1);
      b1 = wb.fma(xv, b1);
      xv = FloatVector.fromArray(S, xTails, xt + 2 * LANES);
      a2 = wa.fma(xv, a2);
      b2 = wb.fma(xv, b2);
      xv = FloatVector.fromArray(S, xTails, xt + 3 * LANES);
      a3 = wa.fma(xv, a3);
      b3 = wb.fma(xv, b3);
    }
    FloatVector sums = sums(a0, b0, a1, b1, a2, b2, a3, b3);
    out[o0] = sums.lane(0);
    out[o0 + 1] = sums.lane(1);
    out[o0 + outStride] = sums.lane(2);
    out[o0 + outStride + 1] = sums.lane(3);
    out[o0 + 2 * outStride] = sums.lane(4);
    out[o0 + 2 * outStride + 1] = sums.lane(5);
    out[o0 + 3 * outStride] = sums.lane(6);
    out[o0 + 3 * outStride + 1] = sums.lane(7);
  }

  /**
   * Eight consecutive weight rows against one token: as {@link #tile2x4}, eight running sums,
   * here with each token vector feeding all eight, and the results land as one vector. A token
   * that no 2x4 tile takes costs an eighth of a tile per row instead of a whole one-row dot
   * product, whose single chain of additions waits on itself.
   */
  private static void tile8x1(Object w, long base, int rowByte, int cols, int bound, float[] x,
      int x0, float[] out, int o, float[] wTails, int wt, float[] xTails, int xt) {
    int rowBytes = cols * Float.BYTES;
    FloatVector a0 = FloatVector.zero(S);
    FloatVector a1 = FloatVector.zero(S);
    FloatVector a2 = FloatVector.zero(S);
    FloatVector a3 = FloatVector.zero(S);
    FloatVector a4 = FloatVector.zero(S);
    FloatVector a5 = FloatVector.zero(S);
    FloatVector a6 = FloatVector.zero(S);
    FloatVector a7 = FloatVector.zero(S);
    for (int k = 0, at = rowByte; k < bound; k += LANES, at += LANES * Float.BYTES) {
      FloatVector xv = FloatVector.fromArray(S, x, x0 + k);
      a0 = WeightVectors.load(S, w, base, at).fma(xv, a0);
      a1 = WeightVectors.load(S, w, base, at + rowBytes).fma(xv, a1);
      a2 = WeightVectors.load(S, w, base, at + 2 * rowBytes).fma(xv, a2);
      a3 = WeightVectors.load(S, w, base, at + 3 * rowBytes).fma(xv, a3);
      a4 = WeightVectors.load(S, w, base, at + 4 * rowBytes).fma(xv, a4);
      a5 = WeightVectors.load(S, w, base, at + 5 * rowBytes).fma(xv, a5);
      a6 = WeightVectors.load(S, w, base, at + 6 * rowBytes).fma(xv, a6);
      a7 = WeightVectors.load(S, w, base, at + 7 * rowBytes).fma(xv, a7);
    }
    if (wTails != null) {
      FloatVector xv = FloatVector.fromArray(S, xTails, xt);
      a0 = FloatVector.fromArray(S, wTails, wt).fma(xv, a0);
      a1 = FloatVector.fromArray(S, wTails, wt + LANES).fma(xv, a1);
      a2 = FloatVector.fromArray(S, wTails, wt + 2 * LANES).fma(xv, a2);
      a3 = FloatVector.fromArray(S, wTails, wt + 3 * LANES).fma(xv, a3);
      a4 = FloatVector.fromArray(S, wTails, wt + 4 * LANES).fma(xv, a4);
      a5 = FloatVector.fromArray(S, wTails, wt + 5 * LANES).fma(xv, a5);
      a6 = FloatVector.fromArray(S, wTails, wt + 6 * LANES).fma(xv, a6);
      a7 = FloatVector.fromArray(S, wTails, wt + 7 * LANES).fma(xv, a7);
    }
    sums(a0, a1, a2, a3, a4, a5, a6, a7).intoArray(out, o);
  }

  /**
   * Loads one vector of every cache line of {@code floats} weights from {@code rowByte}, into
   * independent sums (a single running sum would make the loads wait on its additions).
   */
  private static void pullRows(Object w, long base, int rowByte, int floats) {
    FloatVector s0 = FloatVector.zero(S);
    FloatVector s1 = FloatVector.zero(S);
    FloatVector s2 = FloatVector.zero(S);
    FloatVector s3 = FloatVector.zero(S);
    int line = FLOATS_PER_CACHE_LINE * Float.BYTES;
    int end = rowByte + (floats - LANES) * Float.BYTES;
    int at = rowByte;
    for (; at + 3 * line <= end; at += 4 * line) {
      s0 = s0.add(WeightVectors.load(S, w, base, at));
      s1 = s1.add(WeightVectors.load(S, w, base, at + line));
      s2 = s2.add(WeightVectors.load(S, w, base, at + 2 * line));
      s3 = s3.add(WeightVectors.load(S, w, base, at + 3 * line));
    }
    for (; at <= end; at += line) {
      s0 = s0.add(WeightVectors.load(S, w, base, at));
    }
    // Kept where the compiler must assume it is read, so the loads are not dropped as dead.
    pullSink = s0.add(s1).add(s2).add(s3).lane(0);
  }

  /** One row against one token; the ends past {@code bound} as in {@link #tile2x4}. */
  private static float rowDot(Object w, long base, int rowByte, int bound, float[] x, int x0,
      float[] wTails, int wt, float[] xTails, int xt) {
    FloatVector acc = FloatVector.zero(S);
    for (int k = 0; k < bound; k += LANES) {
      acc = WeightVectors.load(S, w, base, rowByte + k * Float.BYTES)
          .fma(FloatVector.fromArray(S, x, x0 + k), acc);
    }
    if (wTails != null) {
      acc = FloatVector.fromArray(S, wTails, wt).fma(FloatVector.fromArray(S, xTails, xt), acc);
    }
    return sum(acc);
  }

  @Override
  public float dot(float[] a, int aOffset, float[] b, int bOffset, int length) {
    FloatVector acc = FloatVector.zero(S);
    int bound = S.loopBound(length);
    int k = 0;
    for (; k < bound; k += LANES) {
      acc = FloatVector.fromArray(S, a, aOffset + k).fma(FloatVector.fromArray(S, b, bOffset + k), acc);
    }
    if (k < length) {
      VectorMask<Float> m = S.indexInRange(k, length);
      acc = FloatVector.fromArray(S, a, aOffset + k, m).fma(FloatVector.fromArray(S, b, bOffset + k, m), acc);
    }
    return sum(acc);
  }

  /** Each 8-float slice of y stays in a register across all the rows. */
  @Override
  public void accumulateRows(float[] weights, int wOffset, float[] rows, int rowsOffset,
      int rowCount, int length, float[] y, int yOffset) {
    int bound = S.loopBound(length);
    int i = 0;
    for (; i < bound; i += LANES) {
      FloatVector acc = FloatVector.fromArray(S, y, yOffset + i);
      for (int r = 0, at = rowsOffset + i; r < rowCount; r++, at += length) {
        acc = FloatVector.broadcast(S, weights[wOffset + r])
            .fma(FloatVector.fromArray(S, rows, at), acc);
      }
      acc.intoArray(y, yOffset + i);
    }
    for (; i < length; i++) {
      float acc = y[yOffset + i];
      for (int r = 0; r < rowCount; r++) {
        acc = Math.fma(weights[wOffset + r], rows[rowsOffset + r * length + i], acc);
      }
      y[yOffset + i] = acc;
    }
  }

  /**
   * The canonical fixed-order reduction of {@link Kernels#sumLanes} in vector registers. Lane by
   * lane extraction inlines into so many nodes that the compiler gave up inlining it into
   * {@link #tile2x4}, and a call that is not inlined boxes its vector argument.
   */
  private static float sum(FloatVector v) {
    FloatVector neighbours = v.add(v.rearrange(SWAP_NEIGHBOURS));
    FloatVector pairs = neighbours.add(neighbours.rearrange(SWAP_PAIRS));
    return pairs.add(pairs.rearrange(SWAP_HALVES)).lane(0);
  }

  /**
   * The canonical sums of eight vectors at once: lane i of the result is {@link #sum} of the
   * i-th argument. Each step adds every vector to its swapped self and keeps, by a blend, the
   * lanes where its own sums sit, so one register carries twice as many sums after each step.
   * Written out without helper methods: a helper the compiler had compiled on its own before it
   * compiled a caller was too big to inline any more, and its vectors were boxed. For the same
   * reason its callers are the matmul tiles alone: with attention scores reduced here too, the
   * compiler in 2 of 9 JVM starts built {@link #tile2x4} with these blends on boxed vectors, and
   * tiny requests ran some 40 % slower.
   */
  private static FloatVector sums(FloatVector v0, FloatVector v1, FloatVector v2,
      FloatVector v3, FloatVector v4, FloatVector v5, FloatVector v6, FloatVector v7) {
    FloatVector s01 = v0.add(v0.rearrange(SWAP_NEIGHBOURS))
        .blend(v1.add(v1.rearrange(SWAP_NEIGHBOURS)), ODD_LANES);
    FloatVector s23 = v2.add(v2.rearrange(SWAP_NEIGHBOURS))
        .blend(v3.add(v3.rearrange(SWAP_NEIGHBOURS)), ODD_LANES);
    FloatVector s45 = v4.add(v4.rearrange(SWAP_NEIGHBOURS))
        .blend(v5.add(v5.rearrange(SWAP_NEIGHBOURS)), ODD_LANES);
    FloatVector s67 = v6.add(v6.rearrange(SWAP_NEIGHBOURS))
        .blend(v7.add(v7.rearrange(SWAP_NEIGHBOURS)), ODD_LANES);
    FloatVector s0123 = s01.add(s01.rearrange(SWAP_PAIRS))
        .blend(s23.add(s23.rearrange(SWAP_PAIRS)), ODD_PAIRS);
    FloatVector s4567 = s45.add(s45.rearrange(SWAP_PAIRS))
        .blend(s67.add(s67.rearrange(SWAP_PAIRS)), ODD_PAIRS);
    return s0123.add(s0123.rearrange(SWAP_HALVES))
        .blend(s4567.add(s4567.rearrange(SWAP_HALVES)), UPPER_HALF);
  }

  /**
   * A compute thread's rows widened to float32, and the raw row they come from. A row's bytes
   * are first copied in bulk onto the heap: on Java 17 a vector load from a direct buffer costs
   * a bounds check that a heap array's does not, and the copy of a quarter or half of a float
   * row costs less than the checks would. Eight weights at a time are then widened in
   * registers: a bfloat16 is a float's upper half; an e4m3 byte's fields move into a float's by
   * one shift and mask, and its block's scale corrects the exponent bias (see
   * {@link WeightFormat#E4M3_BIAS_CORRECTION}). A row's last partial vector goes through
   * {@link WeightMatrix#get}, which computes the same bits.
   */
  private static final class WidenedRows {
    private static final ThreadLocal<WidenedRows> PER_THREAD = new ThreadLocal<>();
    private static final VectorSpecies<Byte> BYTES = ByteVector.SPECIES_64;
    private static final VectorSpecies<Short> SHORTS = ShortVector.SPECIES_128;

    /** Two widened rows, for the tiles of two rows. */
    final float[] floats;
    private final byte[] fp8;
    private final short[] bf16;

    private WidenedRows(int cols) {
      floats = new float[2 * cols];
      fp8 = new byte[cols];
      bf16 = new short[cols];
    }

    static WidenedRows of(int cols) {
      WidenedRows rows = PER_THREAD.get();
      if (rows == null || rows.fp8.length < cols) {
        rows = new WidenedRows(cols);
        PER_THREAD.set(rows);
      }
      return rows;
    }

    /** Row {@code n} of {@code w} as float32 at {@code floats[at ..]}. */
    void widen(WeightMatrix w, int n, int at) {
      int cols = w.cols();
      if (w.format() == WeightFormat.BF16) {
        w.rawRow(n, bf16);
        int k = 0;
        for (; k + LANES <= cols; k += LANES) {
          IntVector wide = (IntVector) ShortVector.fromArray(SHORTS, bf16, k)
              .convertShape(VectorOperators.S2I, I, 0);
          wide.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(floats, at + k);
        }
        tail(w, n, k, cols, at);
        return;
      }
      w.rawRow(n, fp8);
      int segment = w.segmentCols();
      float[] scales = w.kernelScales();
      int scaleAt = w.scaleRowStart(n);
      for (int from = 0; from < cols; from += segment) {
        int to = Math.min(cols, from + segment);
        float scale = scales[scaleAt++];
        int k = from;
        for (; k + LANES <= to; k += LANES) {
          IntVector wide = (IntVector) ByteVector.fromArray(BYTES, fp8, k)
              .convertShape(VectorOperators.B2I, I, 0);
          wide.lanewise(VectorOperators.LSHL, 20).and(WeightFormat.E4M3_FIELDS)
              .reinterpretAsFloats().mul(scale).intoArray(floats, at + k);
        }
        tail(w, n, k, to, at);
      }
    }

    private void tail(WeightMatrix w, int n, int from, int to, int at) {
      for (int k = from; k < to; k++) {
        floats[at + k] = w.get(n, k);
      }
    }
  }
}
