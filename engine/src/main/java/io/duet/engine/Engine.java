package io.duet.engine;

import io.duet.engine.impl.BlockAllocator;
import io.duet.engine.impl.Kernels;
import io.duet.engine.impl.KernelsProvider;
import io.duet.engine.impl.KvStorage;
import io.duet.engine.impl.Transformer;
import io.duet.engine.impl.WorkerPool;
import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One model with its paged KV cache and compute threads: the unit that prefill and decode
 * services each run.
 *
 * <p>The life of a sequence: {@link #allocate} a prompt (reusing cached prefix blocks),
 * {@link #step} computes every token whose KV is not cached yet and leaves next-token logits in
 * {@link Sequence#logits()}, {@link #append} a sampled token, step again, ...,
 * {@link #release}. Between engines, {@link #exportKv} and {@link #beginImport} move a sequence's
 * KV blocks.
 *
 * <p>Threading: allocate, append and step belong to one thread at a time (the engine thread).
 * Export, import and release may run on other threads for sequences the engine thread is not
 * stepping (a prefilled sequence under lease, an import in progress); the block allocator is
 * shared safely.
 */
public final class Engine implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(Engine.class);

  private final Model model;
  private final Tokenizer tokenizer;
  private final EngineOptions options;
  private final Kernels kernels;
  private final WorkerPool pool;
  private final KvStorage storage;
  private final BlockAllocator allocator;
  private final Transformer transformer;
  private final AtomicLong nextSequenceId = new AtomicLong(1);
  private volatile KvLayout layout;
  // Written by the engine thread, read by metrics and tests elsewhere.
  private volatile long computedTokens;

  // Step scratch, sized once.
  private final int[] rowTokens;
  private final int[] rowPositions;
  private final int[] rowSegment;
  private final int[][] segmentTables;
  private final int[] logitSourceRows;
  private final Sequence[] logitSequences;
  private final float[] logits;

  private Engine(Model model, Tokenizer tokenizer, EngineOptions options, Kernels kernels) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.options = options;
    this.kernels = kernels;
    ModelConfig c = model.config();
    int blocks = options.kvBlocks() > 0 ? options.kvBlocks()
        : (int) Math.max(1, Math.min(Integer.MAX_VALUE,
            options.kvCacheBytes() / (c.kvFloatsPerToken() * Float.BYTES * options.blockSize())));
    this.pool = new WorkerPool(options.threads(), "duet-forward", options.sharedCores());
    this.storage = new KvStorage(c.layers(), blocks, options.blockSize(), c.kvHeads(),
        c.headSize());
    this.allocator = new BlockAllocator(blocks, options.blockSize());
    int maxTokens = options.maxBatchTokens();
    int maxRows = options.maxSequences();
    this.transformer = new Transformer(model, kernels, pool, storage, maxTokens, maxRows);
    this.rowTokens = new int[maxTokens];
    this.rowPositions = new int[maxTokens];
    this.rowSegment = new int[maxTokens];
    this.segmentTables = new int[maxTokens][];
    this.logitSourceRows = new int[maxRows];
    this.logitSequences = new Sequence[maxRows];
    this.logits = new float[maxRows * c.vocabSize()];
  }

  /** Opens the model (as {@link EngineOptions#weightStorage} says) and tokenizer and sizes the KV cache. */
  public static Engine open(EngineOptions options) throws IOException {
    return open(options, KernelsProvider.best());
  }

  private static Engine open(EngineOptions options, Kernels kernels) throws IOException {
    if (options.modelPath() == null) {
      throw new IllegalArgumentException("no model path given");
    }
    Model model = Model.load(options.modelPath(), options.weightStorage());
    Tokenizer tokenizer = options.tokenizerPath() == null ? null
        : Tokenizer.load(options.tokenizerPath(), model.config().vocabSize());
    Engine engine = new Engine(model, tokenizer, options, kernels);
    LOG.info("engine ready: {} {} with {} KV blocks of {} tokens, {} threads, {}; weights {}",
        model.path().getFileName(), model.config(), engine.allocator.stats().totalBlocks(),
        options.blockSize(), options.threads(), kernels.description(),
        model.storageDescription());
    return engine;
  }

  public Model model() {
    return model;
  }

  public ModelConfig config() {
    return model.config();
  }

  public EngineOptions options() {
    return options;
  }

  /** The tokenizer, or null when the engine was opened without one. */
  public Tokenizer tokenizer() {
    return tokenizer;
  }

  public String kernelsDescription() {
    return kernels.description();
  }

  /** The KV layout fingerprint (hashes the model file on first call). */
  public KvLayout layout() {
    KvLayout value = layout;
    if (value == null) {
      ModelConfig c = model.config();
      value = new KvLayout(model.contentHash(), KvLayout.DTYPE_F32, c.layers(), c.kvHeads(),
          c.headSize(), options.blockSize());
      layout = value;
    }
    return value;
  }

  public KvCacheStats kvStats() {
    return allocator.stats();
  }

  /** Tokens this engine has run through the model since it opened (prefix hits excluded). */
  public long computedTokens() {
    return computedTokens;
  }

  /**
   * Starts a sequence for a prompt. Full blocks of a prefix that an earlier sequence computed
   * are taken from the prefix cache; at least the last prompt token is always computed, since
   * its logits are needed.
   *
   * @throws KvCacheFullException when the blocks cannot be had; nothing stays allocated
   */
  public Sequence allocate(int[] prompt) {
    checkTokens(prompt);
    int blockSize = options.blockSize();
    int reusable = (prompt.length - 1) / blockSize;
    int[] reused = new int[reusable];
    long[] hashes = new long[reusable];
    int hits = 0;
    long hash = 0;
    while (hits < reusable) {
      hash = BlockAllocator.chainHash(hash, prompt, hits * blockSize, blockSize);
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
    int[] table = new int[hits + needed];
    System.arraycopy(reused, 0, table, 0, hits);
    System.arraycopy(fresh, 0, table, hits, needed);
    int cached = hits * blockSize;
    Sequence sequence = new Sequence(nextSequenceId.getAndIncrement(), prompt, table, cached, cached);
    for (int i = 0; i < hits; i++) {
      sequence.recordPublished(i, hashes[i]);
    }
    return sequence;
  }

  private void checkTokens(int[] tokens) {
    ModelConfig c = model.config();
    if (tokens.length == 0) {
      throw new IllegalArgumentException("a sequence needs at least one token");
    }
    if (tokens.length > c.seqLen()) {
      throw new IllegalArgumentException(tokens.length + " tokens exceed the model's context of "
          + c.seqLen());
    }
    for (int token : tokens) {
      if (token < 0 || token >= c.vocabSize()) {
        throw new IllegalArgumentException("token id " + token + " is outside the vocabulary [0, "
            + c.vocabSize() + ")");
      }
    }
  }

  /**
   * The KV blocks a generation of at most {@code maxTokens} tokens after a prompt of
   * {@code promptTokens} can occupy: the last sampled token is never appended, and the model's
   * context caps the rest. Schedulers reserve this much before admitting a request, so that a
   * running sequence never finds the cache full.
   */
  public int blocksForGeneration(int promptTokens, int maxTokens) {
    long tokens = Math.min(model.config().seqLen(), (long) promptTokens + maxTokens - 1);
    int blockSize = options.blockSize();
    return (int) Math.max(1, (tokens + blockSize - 1) / blockSize);
  }

  /** Room left in the model's context for more tokens of this sequence. */
  public int contextRemaining(Sequence sequence) {
    return model.config().seqLen() - sequence.length();
  }

  /**
   * Adds a token (usually the one just sampled); its KV is computed by the next step.
   *
   * @throws KvCacheFullException when a new block is needed and none can be had
   * @throws IllegalStateException when the model's context is full
   */
  public void append(Sequence sequence, int token) {
    if (sequence.length() >= model.config().seqLen()) {
      throw new IllegalStateException("sequence " + sequence.id() + " fills the context of "
          + model.config().seqLen() + " tokens");
    }
    if (token < 0 || token >= model.config().vocabSize()) {
      throw new IllegalArgumentException("token id " + token + " is outside the vocabulary");
    }
    int position = sequence.length();
    if (position / options.blockSize() >= sequence.blockCount()) {
      sequence.addBlock(allocator.allocate(1)[0]);
    }
    sequence.addToken(token);
  }

  /**
   * Computes the KV of every pending token of the given sequences (whole prompts, or the one
   * token appended since the last step) and fills each sequence's next-token logits. Batches
   * larger than the configured limits are run as several forward passes.
   */
  public void step(List<Sequence> sequences) {
    int vocab = model.config().vocabSize();
    int index = 0;
    while (index < sequences.size()) {
      int rows = 0;
      int segments = 0;
      int logitRows = 0;
      int first = index;
      while (index < sequences.size() && rows < rowTokens.length
          && logitRows < logitSequences.length) {
        Sequence s = sequences.get(index);
        if (s.isReleased()) {
          throw new IllegalStateException("sequence " + s.id() + " was released");
        }
        int start = s.computedTokens();
        if (start == s.length()) {
          throw new IllegalStateException("sequence " + s.id() + " has no pending token: append "
              + "one before stepping it");
        }
        int take = Math.min(s.length() - start, rowTokens.length - rows);
        int segment = segments++;
        segmentTables[segment] = s.blockTable();
        for (int i = 0; i < take; i++) {
          rowTokens[rows] = s.token(start + i);
          rowPositions[rows] = start + i;
          rowSegment[rows] = segment;
          rows++;
        }
        if (start + take == s.length()) {
          logitSourceRows[logitRows] = rows - 1;
          logitSequences[logitRows++] = s;
          index++;
        } else {
          // The rest of this prompt goes into the next pass; remember how far it got.
          s.markComputed(start + take);
          break;
        }
      }
      if (rows > 0) {
        transformer.forward(rows, rowTokens, rowPositions, rowSegment, segmentTables, logitRows,
            logitSourceRows, logits);
        computedTokens += rows;
      }
      for (int r = 0; r < logitRows; r++) {
        Sequence s = logitSequences[r];
        System.arraycopy(logits, r * vocab, s.logitsBuffer(vocab), 0, vocab);
        s.markComputed(s.length());
        logitSequences[r] = null;
      }
      for (int i = first; i < index; i++) {
        publishFullBlocks(sequences.get(i));
      }
      java.util.Arrays.fill(segmentTables, 0, segments, null);
    }
  }

  private void publishFullBlocks(Sequence s) {
    if (!s.isCacheable()) {
      return;
    }
    int blockSize = options.blockSize();
    int[] tokens = s.tokenArray();
    for (int i = s.publishedBlocks(); (i + 1) * blockSize <= s.computedTokens(); i++) {
      long previous = i == 0 ? 0 : s.blockHash(i - 1);
      long hash = BlockAllocator.chainHash(previous, tokens, i * blockSize, blockSize);
      allocator.publish(s.block(i), hash, tokens, i * blockSize);
      s.recordPublished(i, hash);
    }
  }

  /** Prompt lengths of warm-up's short prefills: fewer tokens than a tile, or a tile and some. */
  private static final int[] SHORT_WARM_UP_PROMPTS = {5, 2, 7, 3, 6};

  /**
   * Runs throw-away prompts and {@code decodeSteps} decode steps in all so that the JIT compiles
   * the forward pass before real requests arrive (the Vector API is slow until it is compiled;
   * about a thousand steps reach full speed, because each per-chunk task of the forward pass runs
   * only a few times per layer). More steps than one sequence can hold run as several sequences.
   * Uses no cache blocks afterwards and leaves nothing in the prefix cache.
   *
   * @return how long it took, in milliseconds
   */
  public long warmUp(int decodeSteps) {
    return warmUp(decodeSteps, Long.MAX_VALUE);
  }

  /**
   * As {@link #warmUp(int)}, but stops early once {@code budgetMillis} have passed: on a large
   * model a thousand steps take long enough to hold up a service's start.
   */
  public long warmUp(int decodeSteps, long budgetMillis) {
    long start = System.nanoTime();
    long deadline = budgetMillis >= Long.MAX_VALUE / 1_000_000
        ? Long.MAX_VALUE : start + budgetMillis * 1_000_000;
    int seqLen = model.config().seqLen();
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
    int vocab = model.config().vocabSize();
    int[] prompt = new int[length];
    for (int i = 0; i < length; i++) {
      prompt[i] = (int) ((i * 2654435761L + 17) % vocab);
    }
    Sequence scratch = new Sequence(nextSequenceId.getAndIncrement(), prompt,
        allocator.allocate((length + options.blockSize() - 1) / options.blockSize()), 0, 0);
    scratch.excludeFromPrefixCache();
    try {
      List<Sequence> batch = List.of(scratch);
      step(batch);
      int done = 0;
      for (; done < decodeSteps && System.nanoTime() < deadline; done++) {
        append(scratch, Sampler.argmax(scratch.logits()));
        step(batch);
      }
      return done;
    } finally {
      release(scratch);
    }
  }

  /** Frees the sequence's blocks (prefix blocks stay cached for reuse). Idempotent. */
  public void release(Sequence sequence) {
    if (sequence.isReleased()) {
      return;
    }
    for (int i = 0; i < sequence.blockCount(); i++) {
      allocator.release(sequence.block(i));
    }
    sequence.markReleased();
  }

  /**
   * A snapshot of the sequence's computed KV in the wire format. The sequence must stay
   * allocated (not released, not stepped) until the export has been written.
   */
  public KvExport exportKv(Sequence sequence) {
    if (sequence.isReleased()) {
      throw new IllegalStateException("sequence " + sequence.id() + " was released");
    }
    int[] blocks = java.util.Arrays.copyOf(sequence.blockTable(), sequence.blockCount());
    return new KvExport(layout(), storage, sequence.tokens(), sequence.computedTokens(), blocks);
  }

  /**
   * Starts importing a KV stream whose header is {@code header} (as produced by
   * {@link KvExport#header()}); feed the chunks to the returned importer.
   *
   * @throws KvTransferException when the header is damaged or its layout does not match
   * @throws KvCacheFullException when the blocks cannot be had
   */
  public KvImport beginImport(byte[] header) {
    KvWireFormat.Header parsed = KvWireFormat.parseHeader(header);
    String mismatch = layout().mismatch(parsed.layout());
    if (mismatch != null) {
      throw new KvTransferException(KvTransferException.Reason.FINGERPRINT_MISMATCH, mismatch);
    }
    try {
      checkTokens(parsed.tokens());
    } catch (IllegalArgumentException e) {
      throw new KvTransferException(KvTransferException.Reason.MALFORMED, e.getMessage());
    }
    int blockSize = options.blockSize();
    int blocks = (parsed.tokens().length + blockSize - 1) / blockSize;
    return new KvImport(this, storage, allocator, parsed, allocator.allocate(blocks));
  }

  /** Reads a whole KV stream and imports it: {@link #beginImport} plus every chunk. */
  public Sequence importKv(InputStream in) throws IOException {
    KvImport kvImport = beginImport(KvWireFormat.readHeader(in));
    try {
      while (!kvImport.isComplete()) {
        kvImport.acceptChunk(KvWireFormat.readChunk(in));
      }
      return kvImport.finish();
    } finally {
      kvImport.abort();
    }
  }

  /** Wraps imported blocks as a sequence whose every token is computed. */
  Sequence adoptImported(int[] tokens, int[] blocks) {
    Sequence sequence = new Sequence(nextSequenceId.getAndIncrement(), tokens, blocks,
        tokens.length, 0);
    publishFullBlocks(sequence);
    return sequence;
  }

  @Override
  public void close() {
    pool.close();
  }
}
