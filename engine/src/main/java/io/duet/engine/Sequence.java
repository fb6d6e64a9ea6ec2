package io.duet.engine;

import java.util.Arrays;

/**
 * One sequence's state in an {@link Engine}: its tokens, how many of them already have keys and
 * values in the cache, and its block table. Created by {@link Engine#allocate} or by a KV import,
 * ended by {@link Engine#release}. Not thread-safe: it belongs to the thread driving the engine.
 */
public final class Sequence {

  private final long id;
  private int[] tokens;
  private int length;
  private int computed;
  private int[] blocks;
  private int blockCount;
  private long[] blockHashes;
  private int publishedBlocks;
  private final int cachedPrefixTokens;
  private float[] logits;
  private boolean released;
  private boolean cacheable = true;

  Sequence(long id, int[] initialTokens, int[] initialBlocks, int computed, int cachedPrefixTokens) {
    this.id = id;
    this.tokens = Arrays.copyOf(initialTokens, Math.max(16, initialTokens.length * 2));
    this.length = initialTokens.length;
    this.blocks = Arrays.copyOf(initialBlocks, Math.max(4, initialBlocks.length * 2));
    this.blockCount = initialBlocks.length;
    this.blockHashes = new long[this.blocks.length];
    this.computed = computed;
    this.cachedPrefixTokens = cachedPrefixTokens;
  }

  public long id() {
    return id;
  }

  /** Tokens in the sequence: prompt and generated ones. */
  public int length() {
    return length;
  }

  public int token(int position) {
    return tokens[position];
  }

  public int lastToken() {
    return tokens[length - 1];
  }

  public int[] tokens() {
    return Arrays.copyOf(tokens, length);
  }

  /** Tokens whose keys and values are in the cache; the rest wait for the next step. */
  public int computedTokens() {
    return computed;
  }

  /** Prompt tokens whose KV was found in the prefix cache instead of being computed. */
  public int cachedPrefixTokens() {
    return cachedPrefixTokens;
  }

  /** Logits for the next token after the last step that included this sequence. */
  public float[] logits() {
    if (logits == null) {
      throw new IllegalStateException("sequence " + id + " has not been stepped yet");
    }
    return logits;
  }

  public boolean isReleased() {
    return released;
  }

  // ---- engine-internal state management ----

  int[] tokenArray() {
    return tokens;
  }

  int[] blockTable() {
    return blocks;
  }

  /** KV blocks the sequence holds. */
  public int blockCount() {
    return blockCount;
  }

  int block(int index) {
    return blocks[index];
  }

  void addToken(int token) {
    if (length == tokens.length) {
      tokens = Arrays.copyOf(tokens, tokens.length * 2);
    }
    tokens[length++] = token;
  }

  void addBlock(int block) {
    if (blockCount == blocks.length) {
      blocks = Arrays.copyOf(blocks, blocks.length * 2);
      blockHashes = Arrays.copyOf(blockHashes, blocks.length);
    }
    blocks[blockCount++] = block;
  }

  void markComputed(int count) {
    computed = count;
  }

  float[] logitsBuffer(int vocabSize) {
    if (logits == null) {
      logits = new float[vocabSize];
    }
    return logits;
  }

  int publishedBlocks() {
    return publishedBlocks;
  }

  long blockHash(int index) {
    return blockHashes[index];
  }

  void recordPublished(int index, long hash) {
    blockHashes[index] = hash;
    publishedBlocks = index + 1;
  }

  /** Keeps this sequence's blocks out of the prefix cache (scratch work such as warm-up). */
  void excludeFromPrefixCache() {
    cacheable = false;
  }

  boolean isCacheable() {
    return cacheable;
  }

  void markReleased() {
    released = true;
    logits = null;
  }
}
