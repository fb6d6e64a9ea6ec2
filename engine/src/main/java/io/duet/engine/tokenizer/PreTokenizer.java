package io.duet.engine.tokenizer;

import java.util.function.Consumer;

/** One step of a Hugging Face pre-tokenizer: cuts a piece of text into smaller pieces. */
interface PreTokenizer {

  /** Hands the non-empty pieces of {@code piece} to {@code out}, in order. */
  void split(String piece, Consumer<String> out);
}
