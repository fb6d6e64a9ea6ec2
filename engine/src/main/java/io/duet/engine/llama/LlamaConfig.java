package io.duet.engine.llama;

import io.duet.engine.ModelFormatException;

/**
 * The shape of a Llama-architecture transformer, as stored in a llama2.c checkpoint header.
 *
 * @param sharedClassifier whether the output classifier reuses the token embedding matrix
 */
public record LlamaConfig(int dim, int hiddenDim, int layers, int heads, int kvHeads,
    int vocabSize, int seqLen, boolean sharedClassifier) {

  public int headSize() {
    return dim / heads;
  }

  public int kvDim() {
    return kvHeads * headSize();
  }

  /** Validates the header values; the message names what is impossible about them. */
  public void validate(String source) throws ModelFormatException {
    String problem = null;
    if (dim <= 0 || hiddenDim <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocabSize <= 0
        || seqLen <= 0) {
      problem = "every dimension must be positive";
    } else if (dim % heads != 0) {
      problem = "dim is not a multiple of n_heads";
    } else if (heads % kvHeads != 0) {
      problem = "n_heads is not a multiple of n_kv_heads";
    } else if (headSize() % 2 != 0) {
      problem = "head size is odd, RoPE needs pairs";
    } else if (dim > 1 << 16 || hiddenDim > 1 << 18 || layers > 1024 || vocabSize > 1 << 22
        || seqLen > 1 << 20) {
      problem = "a dimension is implausibly large";
    }
    if (problem != null) {
      throw new ModelFormatException(source + ": bad checkpoint header " + this + ": " + problem
          + " (is this a llama2.c checkpoint?)");
    }
  }
}
