package io.duet.engine.deepseek;

import io.duet.engine.compute.ChunkPlan;
import io.duet.engine.compute.Kernels;
import io.duet.engine.compute.RowOps;
import io.duet.engine.compute.WeightMatrix;
import io.duet.engine.compute.WorkerPool;
import io.duet.engine.spi.DraftingForwardPass;
import io.duet.engine.spi.ForwardBatch;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ExpertExchange;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.PagedKvCache;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The DeepSeek-V3 forward pass over a batch of token rows of many sequences (see
 * {@link ForwardPass}): multi-head latent attention whose cache holds, per token and layer, the
 * normalized latent and the rotated shared key only; then a dense SwiGLU feed-forward or
 * DeepSeekMoE.
 *
 * <p>Attention runs in the absorbed form for every row, prompt or decode: {@code kv_b_proj}'s
 * key rows turn each query head into the latent space ({@code q_nope^T W_UK}), scores are taken
 * against the cached latents directly, the softmax-weighted latents are summed, and
 * {@code kv_b_proj}'s value rows turn that sum into the head's output. No per-head key or value
 * is ever built. The tests check this against the naive form, which expands every cached latent
 * into full heads.
 *
 * <p>With the multi-token prediction module loaded, {@link #draft} runs it as one more decoder
 * block, whose cache is the KV layer after the main layers'.
 *
 * <p>As in the Llama pass, buffers are allocated once and every output element is computed by
 * one thread with the same code whatever else is in the batch, so a sequence's logits do not
 * depend on its batch.
 */
final class DeepSeekForwardPass implements DraftingForwardPass {

  private static final Logger LOG = LoggerFactory.getLogger(DeepSeekForwardPass.class);

  /** The KV components, in the order {@link DeepSeekModel#kvComponents()} declares them. */
  static final int LATENT = 0;
  static final int ROPE_KEY = 1;
  private static final int CHUNKS_PER_THREAD = 2;
  private static final int CLASSIFIER_CHUNKS_PER_THREAD = 8;

  private final DeepSeekWeights model;
  private final DeepSeekConfig c;
  private final Kernels kernels;
  private final WorkerPool pool;
  private final PagedKvCache kv;
  private final RotaryTables rope;
  private final ExpertRouter router;
  private final float softmaxScale;
  private final int dim;
  private final int heads;
  private final int rank;
  private final int qkDim;
  private final int ropeDim;
  private final int topK;

  private final float[] x;
  private final float[] xb;
  private final float[] delta;
  private final float[] queryDown;
  private final float[] query;
  private final float[] keyValueDown;
  private final float[] attention;
  private final float[] finalRows;
  /** Per draft row, the normalized embedding and hidden state that eh_proj takes; or null. */
  private final float[] joined;
  private final float[][] scores;
  private final float[][] queryLatent;
  private final float[][] outputLatent;
  private final float[] hiddenGate;
  private final float[] hiddenUp;
  private final float[] routerLogits;
  private final int[] chosen;
  private final float[] chosenWeights;
  /** For token row t and choice j, at {@code [t * topK + j]}: the rank its row went to... */
  private final int[] sentTo;
  /** ... and its row in the mail to that rank. */
  private final int[] sentRow;
  private final FeedForwardJobs feedForward;
  private final ExpertExchange exchange;
  private final ExpertPlacement placement;
  /** The routed experts this rank holds, which serve the rows the group sends them. */
  private final ExpertShard shard;

  private final ChunkPlan downPlan;
  private final ChunkPlan queryUpPlan;
  private final ChunkPlan outputPlan;
  private final ChunkPlan routerPlan;
  private final ChunkPlan classifierPlan;
  private final WorkerPool.Task downTask = this::downChunk;
  private final WorkerPool.Task queryUpTask = this::queryUpChunk;
  private final WorkerPool.Task attentionTask = this::attentionChunk;
  private final WorkerPool.Task outputTask = this::outputChunk;
  private final WorkerPool.Task routerTask = this::routerChunk;
  private final WorkerPool.Task classifierTask = this::classifierChunk;
  private final WorkerPool.Task projectionTask = this::projectionChunk;

  // The step being computed; written by the calling thread before each parallel job.
  private int tokenCount;
  private ForwardBatch batch;
  private DeepSeekWeights.Layer layer;
  private int layerIndex;
  private float[] layerCache;
  private int logitRows;
  private float[] logitsOut;
  private WeightMatrix head;

  DeepSeekForwardPass(DeepSeekWeights model, ForwardResources resources) {
    this.model = model;
    this.c = model.config();
    this.kernels = resources.kernels();
    this.pool = resources.pool();
    this.kv = resources.kv();
    this.rope = new RotaryTables(c);
    this.router = new ExpertRouter(c);
    this.softmaxScale = c.softmaxScale();
    this.dim = c.hiddenSize();
    this.heads = c.heads();
    this.rank = c.kvLoraRank();
    this.qkDim = c.qkHeadDim();
    this.ropeDim = c.qkRopeHeadDim();
    this.topK = c.expertsPerToken();
    int rows = resources.maxTokens();
    int threads = pool.size();
    x = new float[rows * dim];
    xb = new float[rows * dim];
    delta = new float[rows * dim];
    queryDown = new float[rows * Math.max(c.qLoraRank(), 1)];
    query = new float[rows * heads * qkDim];
    keyValueDown = new float[rows * (rank + ropeDim)];
    attention = new float[rows * heads * c.vHeadDim()];
    finalRows = new float[resources.maxLogitRows() * dim];
    joined = model.nextToken() == null ? null : new float[rows * 2 * dim];
    scores = new float[threads][c.maxPositions()];
    queryLatent = new float[threads][rank];
    outputLatent = new float[threads][rank];
    int sharedHidden = Math.max(c.intermediateSize(), c.sharedExperts() * c.moeIntermediateSize());
    hiddenGate = new float[rows * sharedHidden];
    hiddenUp = new float[hiddenGate.length];
    int routedRows = rows * topK;
    routerLogits = new float[rows * c.routedExperts()];
    chosen = new int[routedRows];
    chosenWeights = new float[routedRows];
    sentTo = new int[routedRows];
    sentRow = new int[routedRows];
    feedForward = new FeedForwardJobs(kernels, pool, dim, 1);
    exchange = resources.experts();
    placement = new ExpertPlacement(c.routedExperts(), exchange.ranks(),
        resources.expertSlots() > 0 ? resources.expertSlots() : c.routedExperts());
    shard = new ExpertShard(model, placement, exchange.rank(), kernels, pool);
    if (exchange.ranks() > 1) {
      int first = exchange.rank() * placement.slotsPerRank();
      LOG.info("expert-parallel rank {} of {}: expert slots {}-{} of each MoE layer, {} bytes "
          + "of routed-expert weights of the model's {}", exchange.rank(), exchange.ranks(),
          first, first + placement.slotsPerRank() - 1, shard.weightBytes(),
          model.routedExpertBytes());
    }

    DeepSeekWeights.Attention first = model.layer(0).attention();
    WeightMatrix queryFirst = first.queryDown() != null ? first.queryDown() : first.queryUp();
    downPlan = ChunkPlan.of(threads, CHUNKS_PER_THREAD, queryFirst.rows(),
        first.keyValueDown().rows());
    queryUpPlan = ChunkPlan.of(threads, CHUNKS_PER_THREAD, first.queryUp().rows());
    outputPlan = ChunkPlan.of(threads, CHUNKS_PER_THREAD, dim);
    routerPlan = ChunkPlan.of(threads, CHUNKS_PER_THREAD, c.routedExperts());
    classifierPlan = ChunkPlan.of(threads, CLASSIFIER_CHUNKS_PER_THREAD, c.vocabSize());
  }

  @Override
  public void forward(ForwardBatch rows, float[] logits) {
    int count = rows.rowCount();
    this.tokenCount = count;
    this.batch = rows;
    for (int t = 0; t < count; t++) {
      model.embedding().copyRow(rows.token(t), x, t * dim);
    }
    for (int l = 0; l < c.layers(); l++) {
      block(l);
    }
    classify(rows, model.finalNorm(), model.classifier(), logits);
  }

  @Override
  public int hiddenSize() {
    return dim;
  }

  /** {@link #x} after the main layers: each row's hidden state before the final norm. */
  @Override
  public float[] hiddenStates() {
    return x;
  }

  /**
   * The MTP module over {@code rows}, each the token following its position: its embedding and
   * the row of {@code hidden} (the main model's state at that position), each normalized, joined
   * by {@code eh_proj}, then one decoder block with the KV layer after the main ones, then the
   * module's own norm and head.
   */
  @Override
  public void draft(ForwardBatch rows, float[] hidden, float[] logits) {
    DeepSeekWeights.NextToken module = model.nextToken();
    int count = rows.rowCount();
    this.tokenCount = count;
    this.batch = rows;
    float eps = c.rmsNormEps();
    for (int t = 0; t < count; t++) {
      module.embedding().copyRow(rows.token(t), xb, t * dim);
      RowOps.rmsNorm(joined, 2 * t * dim, xb, t * dim, module.embeddingNorm(), dim, eps);
      RowOps.rmsNorm(joined, (2 * t + 1) * dim, hidden, t * dim, module.hiddenNorm(), dim, eps);
    }
    pool.run(outputPlan.chunks(), work(count, module.projection()), projectionTask);
    block(c.layers());
    classify(rows, module.headNorm(), module.head(), logits);
  }

  /** Decoder block {@code l} over every row of {@link #x}, its KV into cache layer {@code l}. */
  private void block(int l) {
    layer = model.layer(l);
    layerIndex = l;
    layerCache = kv.layer(l);
    attend();
    if (l < c.layers()) {
      batch.layerStored(l); // the drafting module's layer is the drafter's, not the pass's
    }
    for (int t = 0; t < tokenCount; t++) {
      RowOps.rmsNorm(xb, t * dim, x, t * dim, layer.feedForwardNorm(), dim, c.rmsNormEps());
    }
    if (layer.dense() != null) {
      feedForward.clear();
      feedForward.add(layer.dense(), xb, 0, tokenCount, hiddenGate, hiddenUp, 0, delta, 0);
      feedForward.run();
    } else {
      mixtureOfExperts();
    }
    RowOps.addInto(x, delta, tokenCount * dim);
  }

  /** The logits of the rows that want them: {@code norm}, then {@code classifier}. */
  private void classify(ForwardBatch rows, float[] norm, WeightMatrix classifier,
      float[] logits) {
    int logitRowCount = rows.logitRowCount();
    for (int r = 0; r < logitRowCount; r++) {
      RowOps.rmsNorm(finalRows, r * dim, x, rows.logitSourceRow(r) * dim, norm, dim,
          c.rmsNormEps());
    }
    this.logitRows = logitRowCount;
    this.logitsOut = logits;
    this.head = classifier;
    pool.run(classifierPlan.chunks(), work(logitRowCount, classifier), classifierTask);
    this.logitsOut = null;
    this.head = null;
    this.layer = null;
    this.layerCache = null;
    this.batch = null;
  }

  /** The multiply-adds of {@code tokens} rows through {@code matrices}, for the pool. */
  private static long work(int tokens, WeightMatrix... matrices) {
    long weights = 0;
    for (WeightMatrix m : matrices) {
      weights += (long) m.rows() * m.cols();
    }
    return tokens * weights;
  }

  /**
   * The multiply-adds of {@link #attentionChunk} over every row and head: the query absorbed
   * into the latent space, a score and a weighted sum per cached position, the value up.
   */
  private long attentionWork() {
    int perHead = rank * (c.qkNopeHeadDim() + c.vHeadDim());
    long work = 0;
    for (int t = 0; t < tokenCount; t++) {
      work += perHead + (long) (batch.position(t) + 1) * (2 * rank + ropeDim);
    }
    return work * heads;
  }

  /** Multi-head latent attention of every row, added into {@link #x}. */
  private void attend() {
    DeepSeekWeights.Attention a = layer.attention();
    float eps = c.rmsNormEps();
    for (int t = 0; t < tokenCount; t++) {
      RowOps.rmsNorm(xb, t * dim, x, t * dim, a.inputNorm(), dim, eps);
    }
    pool.run(downPlan.chunks(), work(tokenCount, a.keyValueDown(),
        a.queryDown() != null ? a.queryDown() : a.queryUp()), downTask);
    if (a.queryDown() != null) {
      int qRank = c.qLoraRank();
      for (int t = 0; t < tokenCount; t++) {
        RowOps.rmsNorm(queryDown, t * qRank, queryDown, t * qRank, a.queryNorm(), qRank, eps);
      }
      pool.run(queryUpPlan.chunks(), work(tokenCount, a.queryUp()), queryUpTask);
    }
    for (int t = 0; t < tokenCount; t++) {
      int position = batch.position(t);
      for (int h = 0; h < heads; h++) {
        rope.rotate(query, (t * heads + h) * qkDim + c.qkNopeHeadDim(), position);
      }
      storeLatent(t, a.latentNorm());
    }
    pool.run(tokenCount * heads, attentionWork(), attentionTask);
    pool.run(outputPlan.chunks(), work(tokenCount, a.output()), outputTask);
    RowOps.addInto(x, delta, tokenCount * dim);
  }

  /** The row's normalized latent and rotated shared key, into its slot of the cache. */
  private void storeLatent(int t, float[] latentNorm) {
    int position = batch.position(t);
    int block = batch.blockTable(t)[position / kv.blockSize()];
    int slot = position % kv.blockSize();
    int from = t * (rank + ropeDim);
    RowOps.rmsNorm(layerCache, kv.offset(block, LATENT, 0, slot), keyValueDown, from,
        latentNorm, rank, c.rmsNormEps());
    rope.rotate(keyValueDown, from + rank, position);
    System.arraycopy(keyValueDown, from + rank, layerCache, kv.offset(block, ROPE_KEY, 0, slot),
        ropeDim);
  }

  /** The compressed query (or the whole query) and the latent with the shared key, from xb. */
  private void downChunk(int chunk, int worker) {
    DeepSeekWeights.Attention a = layer.attention();
    for (int p = downPlan.firstPiece(chunk); p < downPlan.firstPiece(chunk + 1); p++) {
      int from = downPlan.from(p);
      int to = downPlan.to(p);
      if (downPlan.matrix(p) == 1) {
        kernels.matmul(a.keyValueDown(), xb, dim, tokenCount, keyValueDown, 0, rank + ropeDim,
            from, to);
      } else if (a.queryDown() != null) {
        kernels.matmul(a.queryDown(), xb, dim, tokenCount, queryDown, 0, c.qLoraRank(), from,
            to);
      } else {
        kernels.matmul(a.queryUp(), xb, dim, tokenCount, query, 0, heads * qkDim, from, to);
      }
    }
  }

  private void queryUpChunk(int chunk, int worker) {
    int piece = queryUpPlan.firstPiece(chunk);
    kernels.matmul(layer.attention().queryUp(), queryDown, c.qLoraRank(), tokenCount, query, 0,
        heads * qkDim, queryUpPlan.from(piece), queryUpPlan.to(piece));
  }

  /**
   * One (row, head): the query head absorbed into the latent space, scores against every cached
   * latent and rotary key up to the row's position, and the weighted latent sum turned into the
   * head's output.
   */
  private void attentionChunk(int chunk, int worker) {
    DeepSeekWeights.Attention a = layer.attention();
    int t = chunk / heads;
    int h = chunk % heads;
    int nope = c.qkNopeHeadDim();
    int valueDim = c.vHeadDim();
    int queryAt = (t * heads + h) * qkDim;
    float[] latentQuery = queryLatent[worker];
    for (int r = 0; r < rank; r++) {
      latentQuery[r] = kernels.dot(a.keyUpTransposed(), (h * rank + r) * nope, query, queryAt,
          nope);
    }
    int length = batch.position(t) + 1;
    int[] table = batch.blockTable(t);
    int blockSize = kv.blockSize();
    float[] att = scores[worker];
    for (int first = 0, b = 0; first < length; first += blockSize, b++) {
      int latentAt = kv.offset(table[b], LATENT, 0, 0);
      int ropeAt = kv.offset(table[b], ROPE_KEY, 0, 0);
      int end = Math.min(length, first + blockSize);
      for (int p = first; p < end; p++, latentAt += rank, ropeAt += ropeDim) {
        float score = kernels.dot(latentQuery, 0, layerCache, latentAt, rank)
            + kernels.dot(query, queryAt + nope, layerCache, ropeAt, ropeDim);
        att[p] = score * softmaxScale;
      }
    }
    RowOps.softmax(att, length);
    float[] latentSum = outputLatent[worker];
    Arrays.fill(latentSum, 0f);
    for (int first = 0, b = 0; first < length; first += blockSize, b++) {
      int end = Math.min(length, first + blockSize);
      kernels.accumulateRows(att, first, layerCache, kv.offset(table[b], LATENT, 0, 0),
          end - first, rank, latentSum, 0);
    }
    int out = (t * heads + h) * valueDim;
    for (int d = 0; d < valueDim; d++) {
      attention[out + d] = kernels.dot(a.valueUp(), (h * valueDim + d) * rank, latentSum, 0,
          rank);
    }
  }

  private void outputChunk(int chunk, int worker) {
    int piece = outputPlan.firstPiece(chunk);
    int width = heads * c.vHeadDim();
    kernels.matmul(layer.attention().output(), attention, width, tokenCount, delta, 0, dim,
        outputPlan.from(piece), outputPlan.to(piece));
  }

  /**
   * DeepSeekMoE over xb into {@link #delta}: route every row, send each row to the ranks that
   * hold its chosen experts, run the shared experts meanwhile, and add each row's expert
   * outputs by their weights, in the order of its choices whichever rank computed them.
   */
  private void mixtureOfExperts() {
    DeepSeekWeights.Experts experts = layer.experts();
    pool.run(routerPlan.chunks(), work(tokenCount, experts.router()), routerTask);
    int expertCount = c.routedExperts();
    for (int d = 0; d < exchange.ranks(); d++) {
      exchange.outbox(d).clear(layerIndex, dim);
    }
    for (int t = 0; t < tokenCount; t++) {
      router.route(routerLogits, t * expertCount, experts.correctionBias(), chosen,
          chosenWeights, t * topK);
      for (int j = 0; j < topK; j++) {
        int slot = placement.slotFor(chosen[t * topK + j], t);
        int rank = placement.rankOf(slot);
        sentTo[t * topK + j] = rank;
        sentRow[t * topK + j] = exchange.outbox(rank).add(xb, t * dim,
            placement.localIndex(slot));
      }
    }
    if (experts.shared() != null) {
      feedForward.clear();
      feedForward.add(experts.shared(), xb, 0, tokenCount, hiddenGate, hiddenUp, 0, delta, 0);
      feedForward.run();
    } else {
      Arrays.fill(delta, 0, tokenCount * dim, 0f);
    }
    exchange.exchange(shard);
    for (int t = 0; t < tokenCount; t++) {
      for (int j = 0; j < topK; j++) {
        float weight = chosenWeights[t * topK + j];
        float[] results = exchange.outbox(sentTo[t * topK + j]).results();
        int from = sentRow[t * topK + j] * dim;
        for (int i = 0; i < dim; i++) {
          delta[t * dim + i] += weight * results[from + i];
        }
      }
    }
  }

  /** Serves the group's exchanges until every rank of it has ended its step. */
  @Override
  public void endStep() {
    exchange.finishStep(shard);
  }

  /** The bytes of the routed experts' weights this rank holds. */
  long expertWeightBytes() {
    return shard.weightBytes();
  }

  private void routerChunk(int chunk, int worker) {
    int piece = routerPlan.firstPiece(chunk);
    kernels.matmul(layer.experts().router(), xb, dim, tokenCount, routerLogits, 0,
        c.routedExperts(), routerPlan.from(piece), routerPlan.to(piece));
  }

  private void projectionChunk(int chunk, int worker) {
    int piece = outputPlan.firstPiece(chunk);
    kernels.matmul(model.nextToken().projection(), joined, 2 * dim, tokenCount, x, 0, dim,
        outputPlan.from(piece), outputPlan.to(piece));
  }

  private void classifierChunk(int chunk, int worker) {
    int piece = classifierPlan.firstPiece(chunk);
    kernels.matmul(head, finalRows, dim, logitRows, logitsOut, 0, c.vocabSize(),
        classifierPlan.from(piece), classifierPlan.to(piece));
  }
}
