package io.duet.engine.tokenizer;

/**
 * The textbook BPE loop, kept as the reference {@link PairMerger} must equal: scan every adjacent
 * pair, merge the one with the lowest priority (the leftmost on ties), repeat. Quadratic in the
 * number of symbols.
 */
public final class QuadraticMerger {

  private QuadraticMerger() {
  }

  public static int mergeAll(int[] symbols, int count, PairMerger.Rules rules) {
    while (true) {
      int best = -1;
      long bestPair = PairMerger.NO_MERGE;
      for (int i = 0; i + 1 < count; i++) {
        long pair = rules.pair(symbols[i], symbols[i + 1]);
        if (pair != PairMerger.NO_MERGE
            && (best == -1 || (pair >> 32) < (bestPair >> 32))) {
          best = i;
          bestPair = pair;
        }
      }
      if (best == -1) {
        return count;
      }
      symbols[best] = (int) bestPair;
      System.arraycopy(symbols, best + 2, symbols, best + 1, count - best - 2);
      count--;
    }
  }
}
