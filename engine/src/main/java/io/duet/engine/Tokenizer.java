package io.duet.engine;

/**
 * Text to token ids and back, as the model's own tokenizer does it. Implementations are
 * immutable and safe to share between threads.
 */
public interface Tokenizer {

  /** Tokens in the vocabulary. */
  int vocabSize();

  /**
   * The token ids of {@code text}, after the model's beginning-of-sequence token when
   * {@code bos} is set.
   *
   * @throws IllegalArgumentException when the vocabulary cannot represent the text
   */
  int[] encode(String text, boolean bos);

  /**
   * The bytes {@code token} stands for when it follows {@code previous} (some tokenizers drop a
   * leading space after the beginning of a sequence). Callers must not modify the result.
   */
  byte[] decode(int previous, int token);
}
