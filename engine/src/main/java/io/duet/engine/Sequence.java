package io.duet.engine;

/**
 * One sequence in an {@link Engine}: its tokens, how many of them already have KV in the cache,
 * and the logits the last step left for it. Created by {@link Engine#allocate} or a KV import,
 * ended by {@link Engine#release}. Not thread-safe: it belongs to the thread driving the engine.
 */
public interface Sequence {

  /** Unique within its engine. */
  long id();

  /** Tokens in the sequence: prompt and generated ones. */
  int length();

  int token(int position);

  int lastToken();

  /** A copy of every token. */
  int[] tokens();

  /** Tokens whose KV is in the cache; the rest wait for the next step. */
  int computedTokens();

  /** Prompt tokens whose KV was found in the prefix cache instead of being computed. */
  int cachedPrefixTokens();

  /** KV blocks the sequence holds. */
  int blockCount();

  /**
   * Rows of logits the last step left: one, or more after
   * {@link Engine#append(Sequence, int[], int)}.
   */
  int logitRows();

  /**
   * Logits row {@code row} of the last step: the distribution of the token after the
   * {@code (logitRows() - row)}-th last token. The array is the sequence's own and valid until
   * the next step; samplers may overwrite it.
   */
  float[] logits(int row);

  /** Logits for the token after the last one: {@code logits(logitRows() - 1)}. */
  default float[] logits() {
    return logits(logitRows() - 1);
  }

  boolean isReleased();
}
