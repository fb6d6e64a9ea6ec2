package io.duet.engine.tokenizer;

import io.duet.engine.ModelFormatException;
import io.duet.engine.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.OptionalInt;

/**
 * A Hugging Face {@code tokenizer.json} tokenizer. PLACEHOLDER with the API of the real one,
 * which is being written on another branch and replaces this file when they merge: until then
 * {@link #open} refuses every tokenizer, so checkpoints are run by token ids.
 */
public final class HfTokenizer implements Tokenizer {

  private HfTokenizer() {
  }

  /**
   * Opens {@code tokenizer.json} (or the one in a directory) with its
   * {@code tokenizer_config.json}.
   *
   * @throws ModelFormatException always, for now
   */
  public static HfTokenizer open(Path tokenizerJsonOrDirectory) throws IOException {
    throw new ModelFormatException("tokenizer.json support is not built yet");
  }

  /** The token an encoded prompt starts with, when the tokenizer has one. */
  public OptionalInt bosToken() {
    return OptionalInt.empty();
  }

  /** The tokens that end a generation. */
  public int[] endTokens() {
    return new int[0];
  }

  /** The name of the chat template the tokenizer's configuration asks for, e.g. deepseek-v3. */
  public String chatTemplate() {
    return null;
  }

  @Override
  public int vocabSize() {
    return 0;
  }

  @Override
  public int[] encode(String text, boolean bos) {
    throw new UnsupportedOperationException("placeholder tokenizer");
  }

  @Override
  public byte[] decode(int previous, int token) {
    throw new UnsupportedOperationException("placeholder tokenizer");
  }
}
