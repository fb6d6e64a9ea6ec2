package io.duet.engine.impl;

import io.duet.engine.Engine;
import io.duet.engine.EngineDescription;
import io.duet.engine.EngineOptions;
import io.duet.engine.KvCacheFullException;
import io.duet.engine.KvCacheStats;
import io.duet.engine.KvImport;
import io.duet.engine.KvLayout;
import io.duet.engine.KvSnapshot;
import io.duet.engine.KvTransferException;
import io.duet.engine.ModelInfo;
import io.duet.engine.Sampler;
import io.duet.engine.Sequence;
import io.duet.engine.Tokenizer;
import io.duet.engine.compute.Kernels;
import io.duet.engine.compute.KernelsProvider;
import io.duet.engine.compute.WorkerPool;
import io.duet.engine.spi.Architecture;
import io.duet.engine.spi.ContentHashMemo;
import io.duet.engine.spi.DraftingForwardPass;
import io.duet.engine.spi.ExpertExchange;
import io.duet.engine.spi.ForwardBatch;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.LoadedModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@link Engine} of every architecture: a paged KV cache with reference-counted blocks and
 * prefix caching, sequences, the assembly of batches into forward passes, and KV export and
 * import. The architecture supplies the model and its forward pass.
 */
public final class PagedEngine implements Engine {

  private static final Logger LOG = LoggerFactory.getLogger(PagedEngine.class);

  private final SharedModel shared;
  private final LoadedModel model;
  private final ModelInfo info;
  private final EngineOptions options;
  private final Kernels kernels;
  private final WorkerPool pool;
  private final PagedKvStorage storage;
  private final BlockAllocator allocator;
  private final ForwardPass forwardPass;
  /** The forward pass when the model drafts ({@link EngineOptions#mtp}), else null. */
  private final DraftingForwardPass drafter;
  /** A draft pass's hidden-state rows, gathered from its sequences; null without a drafter. */
  private final float[] draftHidden;
  private final ExpertExchange experts;
  private final ForwardBatch batch;
  private final float[] logits;
  /** Step scratch: the sequences that get logits from the pass, and their first logits row. */
  private final PagedSequence[] logitOwners;
  private final int[] firstLogitRow;
  /**
   * Step scratch: the sequences of the pass's segments, and per segment its first row and first
   * position (in a draft pass: the position its draft reaches); its rows run to the next
   * segment's first row ({@link #segmentRows}).
   */
  private final PagedSequence[] segmentOwners;
  private final int[] segmentFirstRow;
  private final int[] segmentPosition;
  private int segmentCount;
  private final AtomicLong nextSequenceId = new AtomicLong(1);
  private volatile KvLayout layout;
  // Written by the engine thread, read by metrics and tests elsewhere.
  private volatile long computedTokens;
  private final AtomicBoolean closed = new AtomicBoolean();

  /**
   * An engine over {@code shared}, which it holds until it closes, with its end of its
   * expert-parallel group's exchange.
   */
  private PagedEngine(SharedModel shared, EngineOptions options, Kernels kernels,
      ExpertExchange experts) {
    this.shared = shared;
    this.model = shared.model();
    this.info = model.info();
    this.options = options;
    this.kernels = kernels;
    int blockSize = options.blockSize();
    long blockBytes = model.kvLayers() * Float.BYTES
        * PagedKvStorage.floatsPerBlock(blockSize, model.kvComponents());
    int blocks = options.kvBlocks() > 0 ? options.kvBlocks()
        : (int) Math.max(1, Math.min(Integer.MAX_VALUE, options.kvCacheBytes() / blockBytes));
    this.storage = new PagedKvStorage(model.kvLayers(), blocks, blockSize, model.kvComponents());
    // A drafted block's last slot depends on the token after the block.
    this.allocator = new BlockAllocator(blocks, blockSize, model.drafts() ? 1 : 0);
    this.pool = new WorkerPool(options.threads(), "duet-forward", options.sharedCores());
    // Each sequence of a drafting engine's pass may want a row for its draft too.
    int maxRows = options.maxSequences() * (1 + (model.drafts() ? 1 : 0));
    this.batch = new ForwardBatch(options.maxBatchTokens(), maxRows);
    this.logits = new float[maxRows * info.vocabSize()];
    this.logitOwners = new PagedSequence[maxRows];
    this.firstLogitRow = new int[maxRows];
    this.segmentOwners = new PagedSequence[options.maxBatchTokens()];
    this.segmentFirstRow = new int[options.maxBatchTokens()];
    this.segmentPosition = new int[options.maxBatchTokens()];
    batch.onLayerStored(this::layerStored);
    this.experts = experts;
    this.forwardPass = model.forwardPass(new ForwardResources(storage, pool, kernels,
        options.maxBatchTokens(), maxRows, experts, options.expertSlots()));
    this.drafter = model.drafts() ? (DraftingForwardPass) forwardPass : null;
    this.draftHidden = drafter == null ? null
        : new float[options.maxBatchTokens() * drafter.hiddenSize()];
    // Last: an engine that failed to construct holds nothing.
    shared.acquire();
  }

  /**
   * Opens the model once with its architecture, and {@code count} engines over it, each with a
   * KV cache, forward pass and compute threads of its own (see {@link Engine#openRanks}).
   */
  public static List<Engine> openRanks(EngineOptions options, int count) throws IOException {
    if (options.modelPath() == null && options.architecture() == null) {
      throw new IllegalArgumentException("no model path given");
    }
    if (count < 1) {
      throw new IllegalArgumentException("at least one engine must be opened, not " + count);
    }
    Architecture architecture = Architectures.find(options);
    if (options.modelPath() == null && architecture.readsModelFile()) {
      throw new IllegalArgumentException("no model path given for " + architecture.name());
    }
    SharedModel model = new SharedModel(architecture.open(options));
    List<Engine> engines = new ArrayList<>(count);
    List<ExpertExchange> exchanges = List.of();
    try {
      int ep = expertParallelism(options, model.model().info(),
          ExpertGroups.instanceRanks(options.expertNetwork(), count));
      checkDrafting(options, model.model(), ep);
      exchanges = ExpertGroups.open(options.expertNetwork(), ep, count);
      for (ExpertExchange exchange : exchanges) {
        engines.add(new PagedEngine(model, options, KernelsProvider.best(), exchange));
      }
    } catch (RuntimeException | Error e) {
      engines.forEach(Engine::close);
      // the ends of engines that could not be made
      exchanges.subList(engines.size(), exchanges.size()).forEach(ExpertExchange::leave);
      throw e;
    } finally {
      // The opener lets go: from now on the engines hold the model, and the last to close
      // closes it (at once when none could be made).
      model.release();
    }
    PagedEngine first = (PagedEngine) engines.get(0);
    if (first.experts.ranks() > 1) {
      LOG.info("expert parallelism: {} groups of {} ranks, each rank holding {} of {} expert "
          + "slots", Math.max(1, count / first.experts.ranks()), first.experts.ranks(),
          first.slots() / first.experts.ranks(), first.slots());
    }
    LOG.info("engine ready: {} with {} KV blocks of {} tokens, {} threads{}",
        first.description(), first.allocator.stats().totalBlocks(), options.blockSize(),
        options.threads(), count == 1 ? "" : "; " + count + " such engines share the weights");
    return List.copyOf(engines);
  }

  /**
   * The expert-parallel size the ranks run with: {@link EngineOptions#expertParallel}, or 1 for
   * a model without routed experts.
   *
   * @throws IllegalArgumentException when it does not divide the ranks or the expert slots
   */
  private static int expertParallelism(EngineOptions options, ModelInfo info, int count) {
    int ep = options.expertParallel();
    if (ep == 1 || info.routedExperts() == 0) {
      return 1;
    }
    int slots = options.expertSlots() > 0 ? options.expertSlots() : info.routedExperts();
    if (count % ep != 0 || slots % ep != 0 || slots < info.routedExperts()) {
      throw new IllegalArgumentException("expert parallelism " + ep + " needs a multiple of "
          + ep + " ranks (not " + count + ") and of expert slots (not " + slots + ", for "
          + info.routedExperts() + " routed experts)");
    }
    return ep;
  }

  /** MTP asked for needs a model that drafts; drafting does not step with an expert group. */
  private static void checkDrafting(EngineOptions options, LoadedModel model, int ep) {
    if (options.mtp() && !model.drafts()) {
      throw new IllegalArgumentException("MTP is on but " + model.description()
          + " has no multi-token prediction module to draft with; turn MTP off");
    }
    if (model.drafts() && ep > 1) {
      throw new IllegalArgumentException("MTP drafting with expert parallelism (" + ep
          + " ranks) is not supported: turn one of them off");
    }
  }

  private int slots() {
    return options.expertSlots() > 0 ? options.expertSlots() : info.routedExperts();
  }

  @Override
  public ModelInfo info() {
    return info;
  }

  @Override
  public EngineOptions options() {
    return options;
  }

  @Override
  public Tokenizer tokenizer() {
    return model.tokenizer();
  }

  @Override
  public EngineDescription description() {
    return new EngineDescription(model.description(), model.weightsDescription(),
        kernels.description());
  }

  @Override
  public KvLayout layout() {
    KvLayout value = layout;
    if (value == null) {
      value = new KvLayout(contentHash(), model.kvLayers(), model.kvComponents(),
          options.blockSize());
      layout = value;
    }
    return value;
  }

  /** The model's content hash, through the warm cache when there is one. */
  private String contentHash() {
    Path cache = options.warmCache();
    List<Path> files = model.files();
    return cache == null || files.isEmpty() ? model.contentHash()
        : ContentHashMemo.sha256(cache, files, model::contentHash).hash();
  }

  @Override
  public KvCacheStats kvStats() {
    return allocator.stats();
  }

  @Override
  public long computedTokens() {
    return computedTokens;
  }

  @Override
  public Sequence allocate(int[] prompt) {
    checkTokens(prompt);
    int blockSize = options.blockSize();
    int reusable = (prompt.length - 1) / blockSize;
    int[] reused = new int[reusable];
    long[] hashes = new long[reusable];
    int hits = 0;
    long hash = 0;
    while (hits < reusable) {
      hash = BlockAllocator.chainHash(hash, prompt, hits * blockSize, allocator.keyTokens());
      int block = allocator.acquireCached(hash, prompt, hits * blockSize);
      if (block < 0) {
        break;
      }
      reused[hits] = block;
      hashes[hits] = hash;
      hits++;
    }
    int needed = (prompt.length + blockSize - 1) / blockSize - hits;
    int[] fresh;
    try {
      fresh = allocator.allocate(needed);
    } catch (KvCacheFullException e) {
      for (int i = 0; i < hits; i++) {
        allocator.release(reused[i]);
      }
      throw e;
    }
    int[] table = Arrays.copyOf(reused, hits + needed);
    System.arraycopy(fresh, 0, table, hits, needed);
    int cached = hits * blockSize;
    PagedSequence sequence = new PagedSequence(nextSequenceId.getAndIncrement(), prompt, table,
        cached, cached);
    for (int i = 0; i < hits; i++) {
      sequence.recordPublished(i, hashes[i]);
    }
    return sequence;
  }

  private void checkTokens(int[] tokens) {
    if (tokens.length == 0) {
      throw new IllegalArgumentException("a sequence needs at least one token");
    }
    if (tokens.length > info.contextLength()) {
      throw new IllegalArgumentException(tokens.length + " tokens exceed the model's context of "
          + info.contextLength());
    }
    for (int token : tokens) {
      checkToken(token);
    }
  }

  private void checkToken(int token) {
    if (token < 0 || token >= info.vocabSize()) {
      throw new IllegalArgumentException("token id " + token + " is outside the vocabulary [0, "
          + info.vocabSize() + ")");
    }
  }

  @Override
  public int blocksForGeneration(int promptTokens, int maxTokens) {
    long tokens = Math.min(info.contextLength(), (long) promptTokens + maxTokens - 1);
    int blockSize = options.blockSize();
    return (int) Math.max(1, (tokens + blockSize - 1) / blockSize);
  }

  @Override
  public int contextRemaining(Sequence sequence) {
    return info.contextLength() - sequence.length();
  }

  @Override
  public void append(Sequence sequence, int token) {
    append(sequence, new int[] {token}, 1);
  }

  @Override
  public void append(Sequence sequence, int[] tokens, int logitRows) {
    PagedSequence s = live(sequence);
    if (logitRows < 1 || logitRows > tokens.length) {
      throw new IllegalArgumentException(logitRows + " logits rows for " + tokens.length
          + " appended tokens");
    }
    if (logitRows > batch.maxLogitRows()) {
      throw new IllegalArgumentException(logitRows + " logits rows exceed the "
          + batch.maxLogitRows() + " one forward pass can leave");
    }
    if (s.length() + tokens.length > info.contextLength()) {
      throw new IllegalStateException("sequence " + s.id() + " of " + s.length()
          + " tokens cannot take " + tokens.length + " more within the context of "
          + info.contextLength() + " tokens");
    }
    for (int token : tokens) {
      checkToken(token);
    }
    int blockSize = options.blockSize();
    int blocksNeeded = (s.length() + tokens.length + blockSize - 1) / blockSize - s.blockCount();
    if (blocksNeeded > 0) {
      for (int block : allocator.allocate(blocksNeeded)) {
        s.addBlock(block);
      }
    }
    for (int token : tokens) {
      s.addToken(token);
    }
    s.markUnverified(logitRows - 1);
    s.wantLogitRows(logitRows);
  }

  @Override
  public int draftTokens() {
    return drafter == null ? 0 : 1;
  }

  @Override
  public int[] draft(List<Sequence> sequences, int[] next) {
    if (drafter == null) {
      throw new IllegalStateException("this engine does not draft: MTP is off");
    }
    if (next.length != sequences.size()) {
      throw new IllegalArgumentException(next.length + " next tokens for " + sequences.size()
          + " sequences");
    }
    for (int i = 0; i < next.length; i++) {
      PagedSequence s = live(sequences.get(i));
      checkToken(next[i]);
      if (s.computedTokens() != s.length()) {
        throw new IllegalStateException("sequence " + s.id() + " has tokens to compute: step "
            + "it before drafting");
      }
      if (s.draftedTokens() == s.length()) {
        throw new IllegalStateException("sequence " + s.id() + " was drafted from already: "
            + "append the next token and step it first");
      }
      s.markUnverified(0);
    }
    int width = drafter.hiddenSize();
    int vocab = info.vocabSize();
    int[] drafts = new int[next.length];
    int index = 0;
    while (index < sequences.size()) {
      batch.clear();
      int owners = 0;
      int segments = 0;
      int first = index;
      while (index < sequences.size() && batch.hasRoomForRow() && batch.hasRoomForLogits()) {
        PagedSequence s = own(sequences.get(index));
        int start = s.draftedTokens();
        int pending = s.length() - start;
        int take = Math.min(pending, batch.maxTokens() - batch.rowCount());
        int segment = batch.addSequence(s.blockTable());
        segmentOwners[segments] = s;
        segmentPosition[segments++] = start + take;
        // Row p carries the token after p: the sequence's own, or the newly sampled one.
        for (int k = 0; k < take; k++) {
          int p = start + k;
          System.arraycopy(s.hidden(), k * width, draftHidden, batch.rowCount() * width, width);
          batch.addRow(segment, p + 1 < s.length() ? s.token(p + 1) : next[index], p);
        }
        if (take < pending) {
          break;
        }
        batch.wantLogitsOfLastRow();
        owners++;
        index++;
      }
      drafter.draft(batch, draftHidden, logits);
      for (int r = 0; r < owners; r++) {
        drafts[first + r] = Sampler.argmax(logits, r * vocab, vocab);
      }
      for (int k = 0; k < segments; k++) {
        segmentOwners[k].markDrafted(segmentPosition[k], width);
        publishFullBlocks(segmentOwners[k]);
        segmentOwners[k] = null;
      }
    }
    batch.clear();
    return drafts;
  }

  @Override
  public void rejectDrafts(Sequence sequence, int count) {
    PagedSequence s = live(sequence);
    if (count < 1 || count > s.unverified()) {
      throw new IllegalArgumentException("cannot reject " + count + " drafts of sequence "
          + s.id() + ", which has " + s.unverified());
    }
    s.truncate(s.length() - count);
    int keep = (s.length() + options.blockSize() - 1) / options.blockSize();
    while (s.blockCount() > keep) {
      allocator.release(s.removeLastBlock());
    }
    publishFullBlocks(s);
  }

  @Override
  public void idle() {
    pool.rest();
  }

  @Override
  public void step(List<Sequence> sequences) {
    boolean passed = false;
    try {
      runPasses(sequences);
      passed = true;
    } finally {
      if (passed) {
        forwardPass.endStep();
      } else {
        endFailedStep();
      }
    }
  }

  /** Ends a step that failed: its own failure is what the caller hears of, not this one's. */
  private void endFailedStep() {
    try {
      forwardPass.endStep();
    } catch (RuntimeException e) {
      LOG.debug("ending a failed step failed too", e);
    }
  }

  @Override
  public int expertParallelRanks() {
    return experts.ranks();
  }

  @Override
  public long expertExchangeNanos() {
    return experts.exchangeNanos();
  }

  @Override
  public boolean expertPeerWaiting() {
    return experts.peerWaiting();
  }

  @Override
  public void onExpertPeerWaiting(Runnable wake) {
    experts.onPeerWaiting(wake);
  }

  @Override
  public String expertGroupFailure() {
    return experts.failure();
  }

  /** Raises the progress of the pass's sequences whose KV is exported as it is computed. */
  private void layerStored(int layer) {
    for (int i = 0; i < segmentCount; i++) {
      KvProgress progress = segmentOwners[i].progress();
      if (progress != null) {
        progress.layerComputed(layer, segmentPosition[i] + segmentRows(i));
      }
    }
  }

  private void runPasses(List<Sequence> sequences) {
    int vocab = info.vocabSize();
    int index = 0;
    while (index < sequences.size()) {
      batch.clear();
      Arrays.fill(segmentOwners, 0, segmentCount, null);
      segmentCount = 0;
      int owners = 0;
      int first = index;
      while (index < sequences.size() && batch.hasRoomForRow()) {
        PagedSequence s = live(sequences.get(index));
        int start = s.computedTokens();
        int pending = s.length() - start;
        if (pending == 0) {
          throw new IllegalStateException("sequence " + s.id() + " has no pending token: append "
              + "one before stepping it");
        }
        int wanted = Math.min(s.wantedLogitRows(), pending);
        if (batch.logitRowCount() + wanted > batch.maxLogitRows()) {
          break;
        }
        int room = batch.maxTokens() - batch.rowCount();
        // The rows that need logits must share the pass that ends the sequence's tokens.
        int take = pending <= room ? pending : Math.min(room, pending - wanted);
        if (take <= 0) {
          break;
        }
        int segment = batch.addSequence(s.blockTable());
        segmentOwners[segment] = s;
        segmentFirstRow[segment] = batch.rowCount();
        segmentPosition[segment] = start;
        segmentCount = segment + 1;
        boolean ends = take == pending;
        for (int i = 0; i < take; i++) {
          batch.addRow(segment, s.token(start + i), start + i);
          if (ends && i >= take - wanted) {
            batch.wantLogitsOfLastRow();
          }
        }
        if (!ends) {
          // The rest of this prompt goes into the next pass; remember how far it got.
          s.markComputed(start + take);
          break;
        }
        firstLogitRow[owners] = batch.logitRowCount() - wanted;
        logitOwners[owners++] = s;
        index++;
      }
      if (batch.rowCount() > 0) {
        forwardPass.forward(batch, logits);
        computedTokens += batch.rowCount();
        if (drafter != null) {
          keepHiddenStates();
        }
        // Every layer is stored once the pass is done, whether the pass said so or not.
        for (int l = 0; l < model.kvLayers(); l++) {
          layerStored(l);
        }
      }
      for (int r = 0; r < owners; r++) {
        PagedSequence s = logitOwners[r];
        int rows = (r + 1 < owners ? firstLogitRow[r + 1] : batch.logitRowCount())
            - firstLogitRow[r];
        s.setLogits(logits, firstLogitRow[r], rows, vocab);
        s.markComputed(s.length());
        logitOwners[r] = null;
      }
      for (int i = first; i < index; i++) {
        publishFullBlocks(own(sequences.get(i)));
      }
    }
    batch.clear();
    Arrays.fill(segmentOwners, 0, segmentCount, null);
    segmentCount = 0;
  }

  /** How many rows the pass's segment {@code k} has: up to the next segment's first row. */
  private int segmentRows(int k) {
    int end = k + 1 < segmentCount ? segmentFirstRow[k + 1] : batch.rowCount();
    return end - segmentFirstRow[k];
  }

  /** Hands each sequence of the pass the hidden states of its rows, for its next draft. */
  private void keepHiddenStates() {
    float[] hidden = drafter.hiddenStates();
    int width = drafter.hiddenSize();
    for (int k = 0; k < segmentCount; k++) {
      segmentOwners[k].addHidden(segmentPosition[k], hidden, segmentFirstRow[k], segmentRows(k),
          width);
    }
  }

  /**
   * Offers the sequence's full blocks to the prefix cache once everything they hold is final:
   * their tokens computed and verified (no draft), and with a drafter its KV too, which for a
   * block's last slot also needs the (verified) token after the block.
   */
  private void publishFullBlocks(PagedSequence s) {
    if (!s.isCacheable()) {
      return;
    }
    int blockSize = options.blockSize();
    int lookahead = allocator.keyTokens() - blockSize;
    int limit = Math.min(s.computedTokens(), s.length() - s.unverified() - lookahead);
    if (drafter != null) {
      limit = Math.min(limit, s.draftedTokens());
    }
    int[] tokens = s.tokenArray();
    for (int i = s.publishedBlocks(); (i + 1) * blockSize <= limit; i++) {
      long previous = i == 0 ? 0 : s.blockHash(i - 1);
      long hash = BlockAllocator.chainHash(previous, tokens, i * blockSize,
          allocator.keyTokens());
      allocator.publish(s.block(i), hash, tokens, i * blockSize);
      s.recordPublished(i, hash);
    }
  }

  /** Prompt lengths of warm-up's short prefills: fewer tokens than a tile, or a tile and some. */
  private static final int[] SHORT_WARM_UP_PROMPTS = {5, 2, 7, 3, 6};

  /**
   * {@inheritDoc}
   *
   * <p>The Vector API is slow until it is compiled, and about a thousand steps reach full speed,
   * because each per-chunk task of a forward pass runs only a few times per layer. More steps
   * than one sequence can hold run as several sequences.
   */
  @Override
  public long warmUp(int decodeSteps, long budgetMillis) {
    long start = System.nanoTime();
    // The engines of an expert-parallel group step together, so each must run the same steps:
    // a budget would end them at different ones.
    long deadline = budgetMillis >= Long.MAX_VALUE / 1_000_000 || experts.ranks() > 1
        ? Long.MAX_VALUE : start + budgetMillis * 1_000_000;
    int seqLen = info.contextLength();
    // An odd prompt length, so the batched kernels' path for tokens left over after the tiles
    // runs too.
    int length = Math.max(1, Math.min(seqLen / 2, options.maxBatchTokens() / 2) - 1) | 1;
    int stepsPerSequence = Math.max(0, seqLen - 1 - length);
    int remaining = Math.max(0, decodeSteps);
    int round = 0;
    do {
      // A short prompt each round, while the JIT still profiles: a branch it has never seen
      // taken is compiled as a trap, and a real short prompt taking it later sent the whole
      // matmul back to the interpreter (a 5-token prompt cost the next few hundred decode steps
      // a tenth of their speed).
      int shortLength = Math.min(SHORT_WARM_UP_PROMPTS[round++ % SHORT_WARM_UP_PROMPTS.length],
          seqLen - 1);
      warmUpSequence(shortLength, 0, deadline);
      remaining -= warmUpSequence(length, Math.min(remaining, stepsPerSequence), deadline);
    } while (remaining > 0 && stepsPerSequence > 0 && System.nanoTime() < deadline);
    return (System.nanoTime() - start) / 1_000_000;
  }

  /** Prefills one throw-away prompt and decodes up to {@code decodeSteps}; returns how many. */
  private int warmUpSequence(int length, int decodeSteps, long deadline) {
    int vocab = info.vocabSize();
    int[] prompt = new int[length];
    for (int i = 0; i < length; i++) {
      prompt[i] = (int) ((i * 2654435761L + 17) % vocab);
    }
    PagedSequence scratch = new PagedSequence(nextSequenceId.getAndIncrement(), prompt,
        allocator.allocate((length + options.blockSize() - 1) / options.blockSize()), 0, 0);
    scratch.excludeFromPrefixCache();
    try {
      List<Sequence> one = List.of(scratch);
      step(one);
      int done = 0;
      for (; done < decodeSteps && System.nanoTime() < deadline; done++) {
        int next = Sampler.argmax(scratch.logits());
        if (drafter != null) {
          // Only to compile the draft pass: the draft itself is not needed.
          draft(one, new int[] {next});
        }
        append(scratch, next);
        step(one);
      }
      return done;
    } finally {
      release(scratch);
    }
  }

  @Override
  public void release(Sequence sequence) {
    PagedSequence s = own(sequence);
    if (s.isReleased()) {
      return;
    }
    for (int i = 0; i < s.blockCount(); i++) {
      allocator.release(s.block(i));
    }
    s.markReleased();
  }

  @Override
  public KvSnapshot exportKv(Sequence sequence) {
    PagedSequence s = live(sequence);
    if (drafter != null && s.draftedTokens() < s.computedTokens()) {
      throw new IllegalStateException("sequence " + s.id() + " has no drafting KV past position "
          + s.draftedTokens() + ": draft after sampling its next token, then export");
    }
    return new PagedKvSnapshot(layout(), storage, Arrays.copyOf(s.tokenArray(),
        s.computedTokens()), Arrays.copyOf(s.blockTable(), s.blockCount()), null);
  }

  @Override
  public KvSnapshot exportKvAsComputed(Sequence sequence, Runnable onProgress) {
    PagedSequence s = live(sequence);
    if (drafter != null) {
      // The drafting module's KV layer is computed after the main pass, by draft(): it is
      // exported whole, once drafted.
      throw new IllegalStateException("a drafting engine's KV cannot be exported as it is "
          + "computed");
    }
    KvProgress progress = new KvProgress(model.kvLayers(), s.computedTokens(), onProgress);
    s.trackProgress(progress);
    return new PagedKvSnapshot(layout(), storage, s.tokens(),
        Arrays.copyOf(s.blockTable(), s.blockCount()), progress);
  }

  @Override
  public KvImport beginImport(KvLayout sender, int[] tokens) {
    String mismatch = layout().mismatch(sender);
    if (mismatch != null) {
      throw new KvTransferException(KvTransferException.Reason.FINGERPRINT_MISMATCH, mismatch);
    }
    try {
      checkTokens(tokens);
    } catch (IllegalArgumentException e) {
      throw new KvTransferException(KvTransferException.Reason.MALFORMED, e.getMessage());
    }
    int blockSize = options.blockSize();
    int blocks = (tokens.length + blockSize - 1) / blockSize;
    return new PagedKvImport(this, layout(), storage, allocator, tokens.clone(),
        allocator.allocate(blocks));
  }

  /** Wraps imported blocks as a sequence whose every token is computed. */
  Sequence adoptImported(int[] tokens, int[] blocks) {
    PagedSequence sequence = new PagedSequence(nextSequenceId.getAndIncrement(), tokens, blocks,
        tokens.length, 0);
    publishFullBlocks(sequence);
    return sequence;
  }

  private static PagedSequence own(Sequence sequence) {
    if (sequence instanceof PagedSequence paged) {
      return paged;
    }
    throw new IllegalArgumentException("not a sequence of this engine: " + sequence);
  }

  /** The sequence, which must not have been released. */
  private static PagedSequence live(Sequence sequence) {
    PagedSequence paged = own(sequence);
    if (paged.isReleased()) {
      throw new IllegalStateException("sequence " + paged.id() + " was released");
    }
    return paged;
  }

  /** Idempotent: the model is released once, so another engine's hold on it stays. */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      experts.leave();
      pool.close();
      shared.release();
    }
  }
}
