package io.duet.engine.llama;

import io.duet.engine.compute.ChunkPlan;
import io.duet.engine.compute.Kernels;
import io.duet.engine.compute.RowOps;
import io.duet.engine.compute.WeightMatrix;
import io.duet.engine.compute.WorkerPool;
import io.duet.engine.spi.ForwardBatch;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.PagedKvCache;

/**
 * The Llama forward pass (RMSNorm, GQA attention with RoPE, SwiGLU feed-forward) over a batch of
 * token rows that may belong to many sequences, each row at its own position: a prompt being
 * prefilled contributes many rows, a decoding sequence one. Keys and values are written into and
 * read from the paged KV cache through each row's block table: component {@link #KEYS} and
 * {@link #VALUES}, one run per KV head.
 *
 * <p>Every buffer is allocated up front for {@code maxTokens} rows; the parallel jobs are bound
 * once to methods of this class and read the current step from fields, so a step allocates
 * nothing. Every output element is computed by one thread with the same code whatever the batch,
 * which keeps results bit-identical between a sequence alone and inside a batch.
 */
final class LlamaForwardPass implements ForwardPass {

  /**
   * A layer matrix is small (a third to one MB here): cut into many chunks, each thread's reads
   * restart too often for the prefetcher to follow, so each thread takes only two.
   */
  private static final int LAYER_CHUNKS_PER_THREAD = 2;
  /** The classifier is large enough that finer chunks cost nothing and balance the threads. */
  private static final int CLASSIFIER_CHUNKS_PER_THREAD = 8;
  /**
   * The most KV bytes one step of a cache-resident model may read with attention still finding
   * them in the caches: a quarter of {@link WeightMatrix#CACHE_RESIDENT_MODEL_BYTES}, so that the
   * weights and the KV together stay within the budget that made the weights resident.
   */
  static final long RESIDENT_STEP_KV_BYTES = WeightMatrix.CACHE_RESIDENT_MODEL_BYTES / 4;
  /** The KV components, in the order {@link LlamaModel#kvComponents()} declares them. */
  static final int KEYS = 0;
  static final int VALUES = 1;

  private final LlamaWeights model;
  private final LlamaConfig c;
  private final Kernels kernels;
  private final WorkerPool pool;
  private final PagedKvCache kv;

  private final float[] x;
  private final float[] xb;
  private final float[] xb2;
  private final float[] q;
  private final float[] k;
  private final float[] v;
  private final float[] hb;
  private final float[] hb2;
  private final float[] finalRows;
  private final float[][] attentionScratch;
  /** Where {@link #pullIntoCache} leaves its sums: one cache line per worker. */
  private final float[] cacheSink;
  private final float[] ropeCos;
  private final float[] ropeSin;
  private final float attentionScale;

  private final ChunkPlan qkvPlan;
  private final ChunkPlan outputPlan;
  private final ChunkPlan ffnUpPlan;
  private final ChunkPlan ffnDownPlan;
  private final ChunkPlan classifierPlan;
  private final WorkerPool.Task qkvTask = this::qkvChunk;
  private final WorkerPool.Task attentionTask = this::attentionChunk;
  private final WorkerPool.Task outputTask = this::outputChunk;
  private final WorkerPool.Task ffnUpTask = this::ffnUpChunk;
  private final WorkerPool.Task ffnDownTask = this::ffnDownChunk;
  private final WorkerPool.Task classifierTask = this::classifierChunk;

  // The step being computed; written by the calling thread before each parallel job.
  private int tokenCount;
  private ForwardBatch batch;
  private LlamaWeights.Layer layer;
  private float[] layerCache;
  private int logitRows;
  private float[] logitsOut;
  /** Whether this step's attention pulls each head's KV into cache first. */
  private boolean pullKv;

  LlamaForwardPass(LlamaWeights model, ForwardResources resources) {
    this.model = model;
    this.c = model.config();
    this.kernels = resources.kernels();
    this.pool = resources.pool();
    this.kv = resources.kv();
    int maxTokens = resources.maxTokens();
    int maxLogitRows = resources.maxLogitRows();
    int dim = c.dim();
    x = new float[maxTokens * dim];
    xb = new float[maxTokens * dim];
    xb2 = new float[maxTokens * dim];
    q = new float[maxTokens * dim];
    k = new float[maxTokens * c.kvDim()];
    v = new float[maxTokens * c.kvDim()];
    hb = new float[maxTokens * c.hiddenDim()];
    hb2 = new float[maxTokens * c.hiddenDim()];
    finalRows = new float[maxLogitRows * dim];
    attentionScratch = new float[pool.size()][c.seqLen()];
    cacheSink = new float[pool.size() * Kernels.FLOATS_PER_CACHE_LINE];
    int half = c.headSize() / 2;
    ropeCos = new float[c.seqLen() * half];
    ropeSin = new float[c.seqLen() * half];
    fillRopeTables(c, ropeCos, ropeSin);
    attentionScale = (float) Math.sqrt(c.headSize());
    int threads = pool.size();
    LlamaWeights.Layer first = model.layer(0);
    qkvPlan = ChunkPlan.of(threads, LAYER_CHUNKS_PER_THREAD, first.wq().rows(),
        first.wk().rows(), first.wv().rows());
    outputPlan = ChunkPlan.of(threads, LAYER_CHUNKS_PER_THREAD, first.wo().rows());
    ffnUpPlan = ChunkPlan.of(threads, LAYER_CHUNKS_PER_THREAD, first.w1().rows());
    ffnDownPlan = ChunkPlan.of(threads, LAYER_CHUNKS_PER_THREAD, first.w2().rows());
    classifierPlan = ChunkPlan.of(threads, CLASSIFIER_CHUNKS_PER_THREAD,
        model.classifier().rows());
  }

  /** RoPE rotation angles exactly as llama2.c computes them (with its base), in float. */
  private static void fillRopeTables(LlamaConfig c, float[] cos, float[] sin) {
    int half = c.headSize() / 2;
    for (int pos = 0; pos < c.seqLen(); pos++) {
      for (int i = 0; i < half; i++) {
        float freq = 1.0f / (float) Math.pow(c.ropeTheta(), (2 * i) / (float) c.headSize());
        float angle = pos * freq;
        cos[pos * half + i] = (float) Math.cos(angle);
        sin[pos * half + i] = (float) Math.sin(angle);
      }
    }
  }

  @Override
  public void forward(ForwardBatch rows, float[] logits) {
    int count = rows.rowCount();
    this.tokenCount = count;
    this.batch = rows;
    int dim = c.dim();
    long attended = 0;
    for (int t = 0; t < count; t++) {
      model.tokenEmbedding().copyRow(rows.token(t), x, t * dim);
      attended += rows.position(t) + 1;
    }
    // scores and weighted sums of every head over the positions each row attends to
    long attentionWork = 2 * attended * dim;
    // LlamaWeights marks every matrix cache-resident or none: the classifier speaks for all.
    pullKv = pullsKv(model.classifier().isCacheResident(),
        attended * c.layers() * c.kvDim() * 2L * Float.BYTES);
    for (int l = 0; l < c.layers(); l++) {
      layer = model.layer(l);
      layerCache = kv.layer(l);
      for (int t = 0; t < count; t++) {
        RowOps.rmsNorm(xb, t * dim, x, t * dim, layer.attentionNorm(), dim, c.normEps());
      }
      pool.run(qkvPlan.chunks(), (long) count * dim * (dim + 2 * c.kvDim()), qkvTask);
      for (int t = 0; t < count; t++) {
        rotate(t);
        storeKeyValue(t);
      }
      rows.layerStored(l);
      pool.run(count * c.heads(), attentionWork, attentionTask);
      pool.run(outputPlan.chunks(), (long) count * dim * dim, outputTask);
      RowOps.addInto(x, xb2, count * dim);
      for (int t = 0; t < count; t++) {
        RowOps.rmsNorm(xb, t * dim, x, t * dim, layer.ffnNorm(), dim, c.normEps());
      }
      pool.run(ffnUpPlan.chunks(), 2L * count * dim * c.hiddenDim(), ffnUpTask);
      pool.run(ffnDownPlan.chunks(), (long) count * dim * c.hiddenDim(), ffnDownTask);
      RowOps.addInto(x, xb, count * dim);
    }
    int logitRowCount = rows.logitRowCount();
    for (int r = 0; r < logitRowCount; r++) {
      RowOps.rmsNorm(finalRows, r * dim, x, rows.logitSourceRow(r) * dim, model.finalNorm(),
          dim, c.normEps());
    }
    this.logitRows = logitRowCount;
    this.logitsOut = logits;
    pool.run(classifierPlan.chunks(), (long) logitRowCount * dim * c.vocabSize(),
        classifierTask);
    this.logitsOut = null;
    this.layer = null;
    this.layerCache = null;
    this.batch = null;
  }

  private void qkvChunk(int chunk, int worker) {
    int dim = c.dim();
    int kvDim = c.kvDim();
    for (int p = qkvPlan.firstPiece(chunk); p < qkvPlan.firstPiece(chunk + 1); p++) {
      int from = qkvPlan.from(p);
      int to = qkvPlan.to(p);
      switch (qkvPlan.matrix(p)) {
        case 0 -> kernels.matmul(layer.wq(), xb, dim, tokenCount, q, 0, dim, from, to);
        case 1 -> kernels.matmul(layer.wk(), xb, dim, tokenCount, k, 0, kvDim, from, to);
        default -> kernels.matmul(layer.wv(), xb, dim, tokenCount, v, 0, kvDim, from, to);
      }
    }
  }

  /** Rotary position embedding of one row's query and key, pairwise as llama2.c does it. */
  private void rotate(int t) {
    int headSize = c.headSize();
    int half = headSize / 2;
    int tableBase = batch.position(t) * half;
    int dim = c.dim();
    int kvDim = c.kvDim();
    for (int i = 0; i < dim; i += 2) {
      int pair = (i % headSize) / 2;
      float fcr = ropeCos[tableBase + pair];
      float fci = ropeSin[tableBase + pair];
      rotatePair(q, t * dim + i, fcr, fci);
      if (i < kvDim) {
        rotatePair(k, t * kvDim + i, fcr, fci);
      }
    }
  }

  private static void rotatePair(float[] vec, int i, float fcr, float fci) {
    float v0 = vec[i];
    float v1 = vec[i + 1];
    vec[i] = v0 * fcr - v1 * fci;
    vec[i + 1] = v0 * fci + v1 * fcr;
  }

  private void storeKeyValue(int t) {
    int headSize = c.headSize();
    int position = batch.position(t);
    int block = batch.blockTable(t)[position / kv.blockSize()];
    int slot = position % kv.blockSize();
    for (int head = 0; head < c.kvHeads(); head++) {
      int from = t * c.kvDim() + head * headSize;
      System.arraycopy(k, from, layerCache, kv.offset(block, KEYS, head, slot), headSize);
      System.arraycopy(v, from, layerCache, kv.offset(block, VALUES, head, slot), headSize);
    }
  }

  /**
   * Attention of one (row, head) pair over every cached position up to the row's own, walked
   * block by block: within a block the head's keys (and values) follow one another.
   */
  private void attentionChunk(int chunk, int worker) {
    int heads = c.heads();
    int t = chunk / heads;
    int h = chunk % heads;
    int headSize = c.headSize();
    int kvHead = h / (heads / c.kvHeads());
    int length = batch.position(t) + 1;
    int[] table = batch.blockTable(t);
    int blockSize = kv.blockSize();
    float[] att = attentionScratch[worker];
    int qOffset = t * c.dim() + h * headSize;
    if (pullKv) {
      pullIntoCache(table, kvHead, length, worker);
    }
    for (int first = 0, b = 0; first < length; first += blockSize, b++) {
      int keyAt = kv.offset(table[b], KEYS, kvHead, 0);
      int end = Math.min(length, first + blockSize);
      for (int p = first; p < end; p++, keyAt += headSize) {
        att[p] = kernels.dot(q, qOffset, layerCache, keyAt, headSize) / attentionScale;
      }
    }
    RowOps.softmax(att, length);
    int out = t * c.dim() + h * headSize;
    java.util.Arrays.fill(xb, out, out + headSize, 0f);
    for (int first = 0, b = 0; first < length; first += blockSize, b++) {
      int end = Math.min(length, first + blockSize);
      kernels.accumulateRows(att, first, layerCache, kv.offset(table[b], VALUES, kvHead, 0),
          end - first, headSize, xb, out);
    }
  }

  /**
   * Whether attention should {@link #pullIntoCache pull} a step's KV before walking it: always,
   * but for a model whose weights stay in the caches and whose step reads at most {@link
   * #RESIDENT_STEP_KV_BYTES} of KV. There every line is still in cache from the step before, and
   * the pull would cost 4-8 % of aidreams260K's decode engine thread for nothing.
   */
  static boolean pullsKv(boolean weightsCacheResident, long stepKvBytes) {
    return !weightsCacheResident || stepKvBytes > RESIDENT_STEP_KV_BYTES;
  }

  /**
   * Reads one float of every cache line of the key and value runs that one head's attention is
   * about to walk. The runs are short (a 16-slot block's keys for one head are 3 KB) and scattered
   * over the cache, so the hardware prefetcher hardly starts on one before the next begins, and
   * the loops would wait out one miss after another. These independent loads put all the misses
   * in flight at once; the scores and the weighted sum then read from cache.
   */
  private void pullIntoCache(int[] table, int kvHead, int length, int worker) {
    int blockSize = kv.blockSize();
    int headSize = c.headSize();
    // Folded by XOR of the bits: one cycle a step, where a float sum's additions would chain
    // the loop on their latency.
    int bits = 0;
    for (int first = 0, b = 0; first < length; first += blockSize, b++) {
      int keys = kv.offset(table[b], KEYS, kvHead, 0);
      int values = kv.offset(table[b], VALUES, kvHead, 0);
      int floats = Math.min(length - first, blockSize) * headSize;
      for (int i = 0; i < floats; i += Kernels.FLOATS_PER_CACHE_LINE) {
        bits ^= Float.floatToRawIntBits(layerCache[keys + i])
            ^ Float.floatToRawIntBits(layerCache[values + i]);
      }
    }
    // Kept where the compiler must assume it is read, so the loads are not dropped as dead.
    cacheSink[worker * Kernels.FLOATS_PER_CACHE_LINE] = Float.intBitsToFloat(bits);
  }

  private void outputChunk(int chunk, int worker) {
    int dim = c.dim();
    int piece = outputPlan.firstPiece(chunk); // one matrix: one piece per chunk
    kernels.matmul(layer.wo(), xb, dim, tokenCount, xb2, 0, dim,
        outputPlan.from(piece), outputPlan.to(piece));
  }

  /** Gate and up projections of one range of hidden units, then SwiGLU on that range. */
  private void ffnUpChunk(int chunk, int worker) {
    int dim = c.dim();
    int hidden = c.hiddenDim();
    int piece = ffnUpPlan.firstPiece(chunk);
    int from = ffnUpPlan.from(piece);
    int to = ffnUpPlan.to(piece);
    kernels.matmul(layer.w1(), xb, dim, tokenCount, hb, 0, hidden, from, to);
    kernels.matmul(layer.w3(), xb, dim, tokenCount, hb2, 0, hidden, from, to);
    for (int t = 0; t < tokenCount; t++) {
      RowOps.swiGlu(hb, hb2, t * hidden + from, t * hidden + to);
    }
  }

  private void ffnDownChunk(int chunk, int worker) {
    int piece = ffnDownPlan.firstPiece(chunk);
    kernels.matmul(layer.w2(), hb, c.hiddenDim(), tokenCount, xb, 0, c.dim(),
        ffnDownPlan.from(piece), ffnDownPlan.to(piece));
  }

  private void classifierChunk(int chunk, int worker) {
    int piece = classifierPlan.firstPiece(chunk);
    kernels.matmul(model.classifier(), finalRows, c.dim(), logitRows, logitsOut, 0,
        c.vocabSize(), classifierPlan.from(piece), classifierPlan.to(piece));
  }
}
