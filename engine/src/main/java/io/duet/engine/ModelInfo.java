package io.duet.engine;

import java.util.List;

/**
 * What the services need to know of a model, whatever its architecture.
 *
 * @param architecture the name of the {@link io.duet.engine.spi.Architecture} that runs it
 * @param vocabSize tokens in the vocabulary; token ids are in {@code [0, vocabSize)}
 * @param contextLength positions a sequence may hold, prompt and generated tokens together
 * @param bosToken the token an encoded prompt starts with
 * @param endTokens tokens that end a generation unless it ignores them
 *     ({@link SamplingParams#ignoreEos()})
 * @param chatTemplate the name of the chat template that renders conversations for this model
 * @param shape the model's dimensions, for logs (e.g. {@code dim=288 layers=6 heads=6})
 * @param routedExperts the routed experts of each mixture-of-experts layer, which expert
 *     parallelism spreads over a decode instance's ranks; 0 for a dense model (llama2.c's)
 */
public record ModelInfo(String architecture, int vocabSize, int contextLength, int bosToken,
    List<Integer> endTokens, String chatTemplate, String shape, int routedExperts) {

  public ModelInfo {
    endTokens = List.copyOf(endTokens);
    if (routedExperts < 0) {
      throw new IllegalArgumentException("routedExperts < 0: " + routedExperts);
    }
  }

  /** Whether {@code token} ends a generation that does not ignore end tokens. */
  public boolean isEndToken(int token) {
    return endTokens.contains(token);
  }

  /**
   * Whether {@code token} is a control token (the beginning token or an end token): it steers
   * the model and is never shown as text, even when a generation samples it.
   */
  public boolean isControlToken(int token) {
    return token == bosToken || isEndToken(token);
  }
}
