package io.duet.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Hugging Face's byte-level {@code BPE} model: a pre-tokenized piece becomes one symbol per UTF-8
 * byte, then adjacent symbols merge by the rank of their merge (the earliest merge of the file
 * first, the leftmost on ties) until none applies. With {@code ignore_merges}, a piece that is
 * itself in the vocabulary is that one token.
 */
final class BytePairModel {

  private final Map<String, Integer> vocab;
  private final PairTable merges;
  private final boolean ignoreMerges;
  private final Merger merger;
  private final int[] byteTokens = new int[256];

  /** Merges symbols as {@link PairMerger#mergeAll} does. */
  @FunctionalInterface
  interface Merger {
    int mergeAll(int[] symbols, int count, PairMerger.Rules rules);
  }

  /**
   * @param vocab token (in the byte-level alphabet) to id; must hold every single byte
   * @param merges the merges, ranked by their order in the file
   */
  BytePairModel(Map<String, Integer> vocab, PairTable merges, boolean ignoreMerges) {
    this(vocab, merges, ignoreMerges, PairMerger::mergeAll);
  }

  private BytePairModel(Map<String, Integer> vocab, PairTable merges, boolean ignoreMerges,
      Merger merger) {
    this.vocab = vocab;
    this.merges = merges;
    this.ignoreMerges = ignoreMerges;
    this.merger = merger;
    for (int b = 0; b < 256; b++) {
      byteTokens[b] = vocab.get(String.valueOf(ByteLevel.charOf(b)));
    }
  }

  /**
   * This model with another merge algorithm: the tests and the bench compare {@link PairMerger}
   * with the quadratic textbook loop through it.
   */
  BytePairModel withMerger(Merger other) {
    return new BytePairModel(vocab, merges, ignoreMerges, other);
  }

  /** Appends the tokens of {@code piece} (plain text, not yet in the byte-level alphabet). */
  void encode(String piece, IntStream.Builder out) {
    if (ignoreMerges) {
      Integer whole = vocab.get(ByteLevel.encode(piece));
      if (whole != null) {
        out.add(whole);
        return;
      }
    }
    byte[] utf8 = piece.getBytes(StandardCharsets.UTF_8);
    int[] symbols = new int[utf8.length];
    for (int i = 0; i < utf8.length; i++) {
      symbols[i] = byteTokens[utf8[i] & 0xFF];
    }
    int count = merger.mergeAll(symbols, utf8.length, merges::get);
    for (int i = 0; i < count; i++) {
      out.add(symbols[i]);
    }
  }
}
