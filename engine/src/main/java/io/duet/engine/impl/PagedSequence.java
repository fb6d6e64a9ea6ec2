package io.duet.engine.impl;

import io.duet.engine.Sequence;
import java.util.Arrays;

/**
 * {@link Sequence} of the {@link PagedEngine}: its tokens, its block table, the hashes of the
 * blocks it published to the prefix cache, and its logits.
 */
final class PagedSequence implements Sequence {

  private final long id;
  private int[] tokens;
  private int length;
  private int computed;
  private int[] blocks;
  private int blockCount;
  private long[] blockHashes;
  private int publishedBlocks;
  private final int cachedPrefixTokens;
  /** Logits rows of the last step; arrays are reused from step to step. */
  private float[][] logits = new float[0][];
  private int logitRows;
  /** Logits rows the next step must leave (the last of the pending tokens). */
  private int wantedLogitRows = 1;
  private boolean released;
  private boolean cacheable = true;
  /** The last appended tokens that are drafts the next step verifies (see Engine#draft). */
  private int unverified;
  /** Positions whose drafting-module KV is computed: it needs the token after each. */
  private int draftedTokens;
  /** The main model's hidden states of positions [draftedTokens, computed), for the drafter. */
  private float[] hidden = new float[0];
  /** Set while the sequence's KV is exported as it is computed. */
  private KvProgress progress;

  PagedSequence(long id, int[] initialTokens, int[] initialBlocks, int computed,
      int cachedPrefixTokens) {
    this.id = id;
    this.tokens = Arrays.copyOf(initialTokens, Math.max(16, initialTokens.length * 2));
    this.length = initialTokens.length;
    this.blocks = Arrays.copyOf(initialBlocks, Math.max(4, initialBlocks.length * 2));
    this.blockCount = initialBlocks.length;
    this.blockHashes = new long[this.blocks.length];
    this.computed = computed;
    this.draftedTokens = computed;
    this.cachedPrefixTokens = cachedPrefixTokens;
  }

  @Override
  public long id() {
    return id;
  }

  @Override
  public int length() {
    return length;
  }

  @Override
  public int token(int position) {
    return tokens[position];
  }

  @Override
  public int lastToken() {
    return tokens[length - 1];
  }

  @Override
  public int[] tokens() {
    return Arrays.copyOf(tokens, length);
  }

  @Override
  public int computedTokens() {
    return computed;
  }

  @Override
  public int cachedPrefixTokens() {
    return cachedPrefixTokens;
  }

  @Override
  public int blockCount() {
    return blockCount;
  }

  @Override
  public int logitRows() {
    if (logitRows == 0) {
      throw new IllegalStateException("sequence " + id + " has not been stepped yet");
    }
    return logitRows;
  }

  @Override
  public float[] logits(int row) {
    if (row < 0 || row >= logitRows()) {
      throw new IndexOutOfBoundsException("logits row " + row + " of " + logitRows);
    }
    return logits[row];
  }

  @Override
  public boolean isReleased() {
    return released;
  }

  // ---- the engine's bookkeeping ----

  int[] tokenArray() {
    return tokens;
  }

  int[] blockTable() {
    return blocks;
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

  int wantedLogitRows() {
    return wantedLogitRows;
  }

  void wantLogitRows(int rows) {
    wantedLogitRows = rows;
  }

  /** Takes {@code rows} rows of logits from {@code source}, starting at its row {@code first}. */
  void setLogits(float[] source, int first, int rows, int vocab) {
    if (logits.length < rows) {
      logits = Arrays.copyOf(logits, rows);
    }
    for (int r = 0; r < rows; r++) {
      if (logits[r] == null) {
        logits[r] = new float[vocab];
      }
      System.arraycopy(source, (first + r) * vocab, logits[r], 0, vocab);
    }
    logitRows = rows;
    wantedLogitRows = 1;
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

  KvProgress progress() {
    return progress;
  }

  void trackProgress(KvProgress value) {
    progress = value;
  }

  boolean isCacheable() {
    return cacheable;
  }

  int unverified() {
    return unverified;
  }

  /** The last {@code count} appended tokens are drafts (0: the earlier ones were accepted). */
  void markUnverified(int count) {
    unverified = count;
  }

  /** Drops the tokens from {@code newLength} on; their KV, if computed, no longer counts. */
  void truncate(int newLength) {
    length = newLength;
    computed = Math.min(computed, newLength);
    unverified = 0;
  }

  /** Gives back the last block, once no position of the sequence is in it. */
  int removeLastBlock() {
    return blocks[--blockCount];
  }

  int draftedTokens() {
    return draftedTokens;
  }

  /**
   * Keeps the hidden states of positions {@code [position, position + rows)}: the rows of
   * {@code source} from row {@code from}.
   */
  void addHidden(int position, float[] source, int from, int rows, int width) {
    int kept = (position - draftedTokens) * width;
    int needed = kept + rows * width;
    if (hidden.length < needed) {
      hidden = Arrays.copyOf(hidden, Math.max(needed, hidden.length * 2));
    }
    System.arraycopy(source, from * width, hidden, kept, rows * width);
  }

  /** The hidden state of position {@code p} is at {@code (p - draftedTokens()) * width}. */
  float[] hidden() {
    return hidden;
  }

  /** The drafting module's KV now covers positions below {@code count}. */
  void markDrafted(int count, int width) {
    int dropped = count - draftedTokens;
    int kept = (computed - count) * width;
    System.arraycopy(hidden, dropped * width, hidden, 0, kept);
    draftedTokens = count;
    if (count == computed) {
      // A long prompt's states need not stay for the rest of the sequence's life.
      hidden = hidden.length > 4 * width ? new float[4 * width] : hidden;
    }
  }

  void markReleased() {
    released = true;
    hidden = new float[0];
    logits = new float[0][];
    logitRows = 0;
  }
}
