package io.duet.engine.tokenizer;

/**
 * Byte-pair merging in O(n log n): repeatedly merges the adjacent pair of symbols with the best
 * priority, the leftmost one on ties, until no adjacent pair merges. Every mergeable pair waits in
 * a priority queue keyed by (priority, position); a merge changes only the pairs on its two
 * sides, so only those are looked up again, and queue entries that a merge made stale are
 * recognised when they come out and dropped. This picks the same merges in the same order as
 * rescanning all pairs after every merge (quadratic in the text length), which both the llama2.c
 * and the Hugging Face BPE algorithms are defined by.
 */
public final class PairMerger {

  /** The value of {@link Rules#pair} for a pair that does not merge. */
  public static final long NO_MERGE = Long.MIN_VALUE;

  private static final int REMOVED = -1;

  /** Which adjacent pairs merge, into what, and in which order. */
  @FunctionalInterface
  public interface Rules {
    /**
     * The merge of symbol {@code left} followed by symbol {@code right}, as {@link #merge}
     * packs it, or {@link #NO_MERGE}.
     */
    long pair(int left, int right);
  }

  private PairMerger() {
  }

  /**
   * Packs a merge for {@link Rules#pair}: pairs with a lower {@code priority} merge first, and
   * the pair becomes symbol {@code merged} (not negative).
   */
  public static long merge(int priority, int merged) {
    return ((long) priority << 32) | merged;
  }

  /**
   * Merges {@code symbols[0..count)} in place (symbols are not negative) and returns how many
   * symbols are left at the start of the array.
   */
  public static int mergeAll(int[] symbols, int count, Rules rules) {
    if (count < 2) {
      return count;
    }
    int[] next = new int[count];
    int[] prev = new int[count];
    // pairs[i] is the merge of the pair that symbol i starts, NO_MERGE if none.
    long[] pairs = new long[count];
    LongHeap queue = new LongHeap(count);
    for (int i = 0; i < count; i++) {
      next[i] = i + 1 < count ? i + 1 : -1;
      prev[i] = i - 1;
    }
    pairs[count - 1] = NO_MERGE;
    for (int i = 0; i < count - 1; i++) {
      refreshPair(i, symbols, next, pairs, queue, rules);
    }
    while (!queue.isEmpty()) {
      long top = queue.poll();
      int at = (int) top;
      long pair = pairs[at];
      // A stale entry: the pair at `at` changed or went since it was queued.
      if (pair == NO_MERGE || queueKey(pair, at) != top) {
        continue;
      }
      int right = next[at];
      symbols[at] = (int) pair;
      symbols[right] = REMOVED;
      pairs[right] = NO_MERGE;
      next[at] = next[right];
      if (next[right] != -1) {
        prev[next[right]] = at;
      }
      refreshPair(at, symbols, next, pairs, queue, rules);
      if (prev[at] != -1) {
        refreshPair(prev[at], symbols, next, pairs, queue, rules);
      }
    }
    int kept = 0;
    for (int i = 0; i < count; i++) {
      if (symbols[i] != REMOVED) {
        symbols[kept++] = symbols[i];
      }
    }
    return kept;
  }

  private static void refreshPair(int at, int[] symbols, int[] next, long[] pairs, LongHeap queue,
      Rules rules) {
    long pair = next[at] == -1 ? NO_MERGE : rules.pair(symbols[at], symbols[next[at]]);
    pairs[at] = pair;
    if (pair != NO_MERGE) {
      queue.add(queueKey(pair, at));
    }
  }

  /** Orders by the merge's priority, then by position: the leftmost of equal pairs first. */
  private static long queueKey(long pair, int position) {
    return (pair & 0xFFFF_FFFF_0000_0000L) | position;
  }
}
