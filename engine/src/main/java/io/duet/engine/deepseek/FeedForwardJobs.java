package io.duet.engine.deepseek;

import io.duet.engine.compute.ChunkPlan;
import io.duet.engine.compute.Kernels;
import io.duet.engine.compute.RowOps;
import io.duet.engine.compute.WorkerPool;
import java.util.HashMap;
import java.util.Map;

/**
 * Runs several SwiGLU feed-forwards, each over its own rows, as two parallel jobs (gate and up
 * projections with the gating, then the down projection): a dense layer's one, or a MoE layer's
 * shared experts and every routed expert that has rows, so that small experts do not each cost
 * a round of the worker pool.
 */
final class FeedForwardJobs {

  private static final int CHUNKS_PER_THREAD = 2;

  private final Kernels kernels;
  private final WorkerPool pool;
  private final int dim;
  /**
   * Chunk plans by the number of rows they cut, shared by every matrix of that height. Made by
   * {@link #add} on the calling thread; the workers only read it.
   */
  private final Map<Integer, ChunkPlan> plans = new HashMap<>();

  private final DeepSeekWeights.FeedForward[] ffn;
  private final float[][] input;
  private final int[] inputRow;
  private final int[] tokens;
  private final float[][] gate;
  private final float[][] up;
  private final int[] hiddenOffset;
  private final float[][] output;
  private final int[] outputRow;
  /** Per unit, its first chunk in each job; entry {@code units} is the job's chunk count. */
  private final int[] firstUpChunk;
  private final int[] firstDownChunk;
  private int units;
  /** The multiply-adds of the units added since {@link #clear}, up and down. */
  private long upWork;
  private long downWork;

  private final WorkerPool.Task upTask = this::upChunk;
  private final WorkerPool.Task downTask = this::downChunk;

  FeedForwardJobs(Kernels kernels, WorkerPool pool, int dim, int maxUnits) {
    this.kernels = kernels;
    this.pool = pool;
    this.dim = dim;
    ffn = new DeepSeekWeights.FeedForward[maxUnits];
    input = new float[maxUnits][];
    inputRow = new int[maxUnits];
    tokens = new int[maxUnits];
    gate = new float[maxUnits][];
    up = new float[maxUnits][];
    hiddenOffset = new int[maxUnits];
    output = new float[maxUnits][];
    outputRow = new int[maxUnits];
    firstUpChunk = new int[maxUnits + 1];
    firstDownChunk = new int[maxUnits + 1];
  }

  void clear() {
    java.util.Arrays.fill(input, 0, units, null);
    java.util.Arrays.fill(output, 0, units, null);
    units = 0;
    upWork = 0;
    downWork = 0;
  }

  /**
   * Adds a feed-forward over {@code count} rows of {@code in} from row {@code inRow}; its hidden
   * rows go to {@code gateOut} and {@code upOut} from {@code hidden} ({@code count} rows of the
   * feed-forward's width), its results to {@code out} from row {@code outRow}.
   */
  void add(DeepSeekWeights.FeedForward f, float[] in, int inRow, int count, float[] gateOut,
      float[] upOut, int hidden, float[] out, int outRow) {
    int u = units++;
    ffn[u] = f;
    input[u] = in;
    inputRow[u] = inRow;
    tokens[u] = count;
    gate[u] = gateOut;
    up[u] = upOut;
    hiddenOffset[u] = hidden;
    output[u] = out;
    outputRow[u] = outRow;
    upWork += 2L * count * f.hidden() * dim;
    downWork += (long) count * f.hidden() * dim;
    firstUpChunk[u + 1] = firstUpChunk[u] + plan(f.hidden()).chunks();
    firstDownChunk[u + 1] = firstDownChunk[u] + plan(dim).chunks();
  }

  /** Runs every feed-forward added since {@link #clear}. */
  void run() {
    pool.run(firstUpChunk[units], upWork, upTask);
    pool.run(firstDownChunk[units], downWork, downTask);
  }

  private ChunkPlan plan(int rows) {
    return plans.computeIfAbsent(rows, r -> ChunkPlan.of(pool.size(), CHUNKS_PER_THREAD, r));
  }

  /** The unit whose chunks include {@code chunk}: the last one starting at or before it. */
  private int unitOf(int[] firstChunk, int chunk) {
    int low = 0;
    int high = units - 1;
    while (low < high) {
      int mid = (low + high + 1) >>> 1;
      if (firstChunk[mid] <= chunk) {
        low = mid;
      } else {
        high = mid - 1;
      }
    }
    return low;
  }

  private void upChunk(int chunk, int worker) {
    int u = unitOf(firstUpChunk, chunk);
    DeepSeekWeights.FeedForward f = ffn[u];
    int hidden = f.hidden();
    ChunkPlan plan = plans.get(hidden);
    int piece = plan.firstPiece(chunk - firstUpChunk[u]);
    int from = plan.from(piece);
    int to = plan.to(piece);
    int xOffset = inputRow[u] * dim;
    kernels.matmul(f.gate(), input[u], xOffset, dim, tokens[u], gate[u], hiddenOffset[u], hidden,
        from, to);
    kernels.matmul(f.up(), input[u], xOffset, dim, tokens[u], up[u], hiddenOffset[u], hidden,
        from, to);
    for (int t = 0; t < tokens[u]; t++) {
      int row = hiddenOffset[u] + t * hidden;
      RowOps.swiGlu(gate[u], up[u], row + from, row + to);
    }
  }

  private void downChunk(int chunk, int worker) {
    int u = unitOf(firstDownChunk, chunk);
    DeepSeekWeights.FeedForward f = ffn[u];
    ChunkPlan plan = plans.get(dim);
    int piece = plan.firstPiece(chunk - firstDownChunk[u]);
    kernels.matmul(f.down(), gate[u], hiddenOffset[u], f.hidden(), tokens[u], output[u],
        outputRow[u] * dim, dim, plan.from(piece), plan.to(piece));
  }
}
