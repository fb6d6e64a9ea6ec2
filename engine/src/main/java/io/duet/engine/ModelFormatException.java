package io.duet.engine;

import java.io.IOException;

/**
 * A model or tokenizer file that cannot be read as what it claims to be: wrong size, impossible
 * header values, truncated data. The message names the file and what is wrong with it.
 */
public class ModelFormatException extends IOException {
  public ModelFormatException(String message) {
    super(message);
  }
}
