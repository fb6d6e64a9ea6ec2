package io.duet.engine;

import java.nio.file.Path;
import java.util.Map;
import java.util.Objects;

/**
 * How to open an {@link Engine}. Chainable setters; every value has a {@code DEFAULT_*}.
 */
public final class EngineOptions {

  public static final int DEFAULT_BLOCK_SIZE = 16;
  public static final long DEFAULT_KV_CACHE_BYTES = 256L << 20;
  public static final int DEFAULT_MAX_BATCH_TOKENS = 512;
  public static final int DEFAULT_MAX_SEQUENCES = 64;
  public static final WeightStorage DEFAULT_WEIGHT_STORAGE = WeightStorage.MAPPED;
  public static final WeightFormatMode DEFAULT_WEIGHT_FORMAT = WeightFormatMode.FLOAT32;

  private Path modelPath;
  private String architecture;
  private Path tokenizerPath;
  private int blockSize = DEFAULT_BLOCK_SIZE;
  private long kvCacheBytes = DEFAULT_KV_CACHE_BYTES;
  private int kvBlocks;
  private int maxBatchTokens = DEFAULT_MAX_BATCH_TOKENS;
  private int maxSequences = DEFAULT_MAX_SEQUENCES;
  private int threads = Runtime.getRuntime().availableProcessors();
  private boolean sharedCores;
  private WeightStorage weightStorage = DEFAULT_WEIGHT_STORAGE;
  private WeightFormatMode weightFormat = DEFAULT_WEIGHT_FORMAT;
  private int expertParallel = 1;
  private int expertSlots;
  private boolean mtp;
  private ExpertNetwork expertNetwork;
  private Map<String, String> parameters = Map.of();
  private Path warmCache;

  public Path modelPath() {
    return modelPath;
  }

  /** The model: a checkpoint file or directory, as its architecture reads it. Required. */
  public EngineOptions modelPath(Path value) {
    this.modelPath = value;
    return this;
  }

  public String architecture() {
    return architecture;
  }

  /**
   * The name of the {@link io.duet.engine.spi.Architecture} to run the model with; null (the
   * default) picks the one that recognizes the model file.
   */
  public EngineOptions architecture(String value) {
    this.architecture = value;
    return this;
  }

  public Map<String, String> parameters() {
    return parameters;
  }

  /**
   * Parameters of the architecture by name, for one that takes any (the simulated engine's
   * timing model); empty by default.
   */
  public EngineOptions parameters(Map<String, String> value) {
    this.parameters = Map.copyOf(value);
    return this;
  }

  public WeightStorage weightStorage() {
    return weightStorage;
  }

  /** Where the weights are kept; {@link WeightStorage#MAPPED} by default. */
  public EngineOptions weightStorage(WeightStorage value) {
    this.weightStorage = Objects.requireNonNull(value, "weightStorage");
    return this;
  }

  public WeightFormatMode weightFormat() {
    return weightFormat;
  }

  /**
   * Whether BF16 and FP8 weights stay compact or become float32 at load;
   * {@link WeightFormatMode#FLOAT32} by default (see {@link WeightFormatMode} for why).
   */
  public EngineOptions weightFormat(WeightFormatMode value) {
    this.weightFormat = Objects.requireNonNull(value, "weightFormat");
    return this;
  }

  public Path warmCache() {
    return warmCache;
  }

  /**
   * A directory where the engine keeps what a restart can reuse (the model's content hash:
   * {@link io.duet.engine.spi.ContentHashMemo}); null (the default): nothing is kept.
   */
  public EngineOptions warmCache(Path value) {
    this.warmCache = value;
    return this;
  }

  public Path tokenizerPath() {
    return tokenizerPath;
  }

  /**
   * The tokenizer file, in the format of the model's architecture (llama2.c's
   * {@code tokenizer.bin}; a {@code tokenizer.json} for DeepSeek-V3, whose checkpoint
   * directory's own is used when none is given); without one the engine works on token ids
   * only.
   */
  public EngineOptions tokenizerPath(Path value) {
    this.tokenizerPath = value;
    return this;
  }

  public int blockSize() {
    return blockSize;
  }

  /** Tokens per KV block. */
  public EngineOptions blockSize(int value) {
    this.blockSize = requirePositive(value, "blockSize");
    return this;
  }

  public long kvCacheBytes() {
    return kvCacheBytes;
  }

  /** Heap given to the KV cache, used when {@link #kvBlocks} is not set. */
  public EngineOptions kvCacheBytes(long value) {
    this.kvCacheBytes = requirePositive(value, "kvCacheBytes");
    return this;
  }

  public int kvBlocks() {
    return kvBlocks;
  }

  /** An exact number of KV blocks; 0 (the default) derives it from {@link #kvCacheBytes}. */
  public EngineOptions kvBlocks(int value) {
    if (value < 0) {
      throw new IllegalArgumentException("kvBlocks must not be negative");
    }
    this.kvBlocks = value;
    return this;
  }

  public int maxBatchTokens() {
    return maxBatchTokens;
  }

  /** Token rows in one forward pass; longer prompts are prefilled in several passes. */
  public EngineOptions maxBatchTokens(int value) {
    this.maxBatchTokens = requirePositive(value, "maxBatchTokens");
    return this;
  }

  public int maxSequences() {
    return maxSequences;
  }

  /**
   * Sequences that receive logits from one forward pass: the rows of logits it leaves, times
   * two when the engine drafts ({@link #mtp}), a row for each sequence's draft and one after.
   */
  public EngineOptions maxSequences(int value) {
    this.maxSequences = requirePositive(value, "maxSequences");
    return this;
  }

  public int threads() {
    return threads;
  }

  /** Threads of the forward pass, the calling thread included. */
  public EngineOptions threads(int value) {
    this.threads = requirePositive(value, "threads");
    return this;
  }

  public boolean sharedCores() {
    return sharedCores;
  }

  /**
   * Whether another engine computes on the same cores (prefill and decode in one JVM): the
   * compute threads then give their core away sooner while they wait for each other.
   */
  public EngineOptions sharedCores(boolean value) {
    this.sharedCores = value;
    return this;
  }

  public int expertParallel() {
    return expertParallel;
  }

  /**
   * Expert parallelism of {@link Engine#openRanks}: each group of this many consecutive ranks
   * splits the routed experts of a mixture-of-experts model between its engines, which then
   * step together (see {@link Engine#openRanks}); 1 (the default) lets every engine hold every
   * expert. Ignored for a model without routed experts.
   */
  public EngineOptions expertParallel(int value) {
    this.expertParallel = requirePositive(value, "expertParallel");
    return this;
  }

  public int expertSlots() {
    return expertSlots;
  }

  /**
   * The routed-expert slots of an expert-parallel group: the experts, and redundant copies of
   * experts that share their rows; a multiple of {@link #expertParallel}. 0 (the default): one
   * slot per expert.
   */
  public EngineOptions expertSlots(int value) {
    if (value < 0) {
      throw new IllegalArgumentException("expertSlots must not be negative");
    }
    this.expertSlots = value;
    return this;
  }

  public boolean mtp() {
    return mtp;
  }

  /**
   * Whether to draft with the model's multi-token prediction (MTP) module: speculative decoding
   * of one draft token per step, which the next step verifies (see {@link Engine#draft}). Its
   * block gets a KV layer of its own, so engines exchange KV only when both have it on or both
   * off. False by default; opening a model without such a module with it on fails.
   */
  public EngineOptions mtp(boolean value) {
    this.mtp = value;
    return this;
  }

  public ExpertNetwork expertNetwork() {
    return expertNetwork;
  }

  /**
   * The ranks of {@link Engine#openRanks} are part of an instance whose ranks span several JVMs,
   * whose expert-parallel groups exchange over the network where they span JVMs; null (the
   * default): every rank of the instance is in this JVM.
   */
  public EngineOptions expertNetwork(ExpertNetwork value) {
    this.expertNetwork = value;
    return this;
  }

  private static int requirePositive(int value, String name) {
    if (value <= 0) {
      throw new IllegalArgumentException(name + " must be positive, was " + value);
    }
    return value;
  }

  private static long requirePositive(long value, String name) {
    if (value <= 0) {
      throw new IllegalArgumentException(name + " must be positive, was " + value);
    }
    return value;
  }

  @Override
  public String toString() {
    return "EngineOptions{model=" + modelPath + ", architecture=" + architecture + ", tokenizer="
        + tokenizerPath + ", blockSize=" + blockSize + ", kvCacheBytes=" + kvCacheBytes + ", kvBlocks=" + kvBlocks
        + ", maxBatchTokens=" + maxBatchTokens + ", maxSequences=" + maxSequences + ", threads="
        + threads + ", sharedCores=" + sharedCores + ", expertParallel=" + expertParallel
        + ", expertSlots=" + expertSlots + ", mtp=" + mtp + ", expertNetwork=" + expertNetwork
        + ", parameters=" + parameters + "}";
  }
}
