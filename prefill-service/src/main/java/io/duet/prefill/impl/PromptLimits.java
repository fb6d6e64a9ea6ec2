package io.duet.prefill.impl;

import io.duet.contract.Failure;
import io.duet.contract.ServiceException;
import io.duet.engine.ModelInfo;
import io.duet.engine.Tokenizer;

/**
 * Whether a prompt fits this model's context, answered twice: before tokenizing, from the
 * prompt's length in bytes alone, so that a text far too long for the context costs no
 * tokenizing; then exactly, from its tokens. A prompt fits when it leaves room to generate: at
 * least one token, or all of {@code max_tokens} when the client asked for them (OpenAI and vLLM
 * refuse such a request rather than cut it short).
 *
 * <p><b>Why the byte bound never refuses a prompt that fits.</b> A tokenizer cuts the UTF-8
 * bytes of a text into tokens, each standing for the bytes {@link Tokenizer#decode} gives it,
 * and may add tokens of its own (BOS, llama2.c's dummy prefix) but never drops a byte. So a text
 * of {@code b} bytes has at least {@code ceil(b / m)} tokens, where {@code m} is the most bytes
 * any one token stands for (found once in the vocabulary). The prompt is
 * refused early only when even that lower bound leaves no room. The byte count itself is a lower
 * bound of what the tokenizer sees ({@link #utf8LowerBound}).
 */
public final class PromptLimits {

  private final int contextLength;
  private final int maxBytesPerToken;

  public PromptLimits(ModelInfo info, Tokenizer tokenizer) {
    this.contextLength = info.contextLength();
    this.maxBytesPerToken = tokenizer == null ? 0 : maxBytesPerToken(tokenizer, info.bosToken());
  }

  /** The most bytes one token of {@code tokenizer} stands for, after any token. */
  static int maxBytesPerToken(Tokenizer tokenizer, int bosToken) {
    int max = 1;
    for (int token = 0; token < tokenizer.vocabSize(); token++) {
      max = Math.max(max, Math.max(tokenizer.decode(token, token).length,
          tokenizer.decode(bosToken, token).length));
    }
    return max;
  }

  /**
   * Refuses a text that cannot fit whatever its tokens: one whose bytes need more tokens than
   * the context leaves for the prompt.
   *
   * @param maxTokens the completion the client asked for; 0 when it asked for none
   */
  public void checkText(String text, int maxTokens) {
    long bytes = utf8LowerBound(text);
    long fewestTokens = (bytes + maxBytesPerToken - 1) / maxBytesPerToken;
    if (fewestTokens + Math.max(1, maxTokens) > contextLength) {
      throw new ServiceException(Failure.CONTEXT_LENGTH, "This model's maximum context length is "
          + contextLength + " tokens. However, your prompt is " + bytes + " bytes long, at least "
          + fewestTokens + " tokens" + (maxTokens > 0 ? ", and you asked for " + maxTokens
          + " in the completion. Please reduce the length of the prompt or completion."
          : ". Please reduce the length of the prompt."));
    }
  }

  /**
   * Refuses a prompt of {@code promptTokens} tokens that leaves no room to generate, or less
   * than the {@code maxTokens} the client asked for (0 when it asked for none).
   */
  public void checkTokens(int promptTokens, int maxTokens) {
    if ((long) promptTokens + Math.max(1, maxTokens) <= contextLength) {
      return;
    }
    String limit = "This model's maximum context length is " + contextLength + " tokens. ";
    throw new ServiceException(Failure.CONTEXT_LENGTH, maxTokens > 0
        ? limit + "However, you requested " + ((long) promptTokens + maxTokens) + " tokens ("
            + promptTokens + " in the prompt, " + maxTokens + " in the completion). Please "
            + "reduce the length of the prompt or completion."
        : limit + "However, your prompt has " + promptTokens + " tokens, which leaves no room "
            + "to generate. Please reduce the length of the prompt.");
  }

  /**
   * A lower bound of the length of {@code text} in UTF-8 as {@link String#getBytes} encodes it,
   * without encoding it: a surrogate counts one byte (a lone one becomes {@code ?}, a pair four
   * bytes for two chars).
   */
  static long utf8LowerBound(String text) {
    long bytes = 0;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      bytes += c < 0x80 || Character.isSurrogate(c) ? 1 : c < 0x800 ? 2 : 3;
    }
    return bytes;
  }
}
