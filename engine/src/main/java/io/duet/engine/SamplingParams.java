package io.duet.engine;

import java.util.List;

/**
 * How to pick tokens and when to stop.
 *
 * @param temperature 0 for greedy (argmax); otherwise logits are divided by it before softmax
 * @param topK keep only the k most likely tokens; 0 disables
 * @param topP nucleus sampling: keep the smallest set of tokens whose probability reaches p;
 *     values outside (0, 1) disable it
 * @param seed the random generator's seed; the same seed gives the same tokens
 * @param maxTokens how many tokens to generate at most
 * @param stopTokenIds tokens that end generation (EOS always does unless {@code ignoreEos})
 * @param stopStrings texts that end generation; the output is cut before them
 * @param ignoreEos keep going past EOS (benchmarks)
 * @param minTokens tokens to generate before an end token or a stop token may be sampled (vLLM's
 *     {@code min_tokens}); stop strings still apply
 * @param minP drop the tokens whose probability is below {@code minP} times the most likely
 *     token's (vLLM's {@code min_p}); 0 disables
 */
public record SamplingParams(float temperature, int topK, float topP, long seed, int maxTokens,
    List<Integer> stopTokenIds, List<String> stopStrings, boolean ignoreEos, int minTokens,
    float minP) {

  public SamplingParams {
    if (!(temperature >= 0) || Float.isInfinite(temperature)) {
      throw new IllegalArgumentException("temperature must be a finite number >= 0");
    }
    if (topK < 0) {
      throw new IllegalArgumentException("topK must be >= 0 (0 disables it)");
    }
    if (Float.isNaN(topP)) {
      throw new IllegalArgumentException("topP must be a number");
    }
    if (maxTokens <= 0) {
      throw new IllegalArgumentException("maxTokens must be positive");
    }
    if (minTokens < 0 || minTokens > maxTokens) {
      throw new IllegalArgumentException("minTokens must be in [0, maxTokens]");
    }
    if (!(minP >= 0 && minP <= 1)) {
      throw new IllegalArgumentException("minP must be in [0, 1]");
    }
    stopTokenIds = List.copyOf(stopTokenIds);
    stopStrings = List.copyOf(stopStrings);
  }

  /** Settings without {@code minTokens} and {@code minP}. */
  public SamplingParams(float temperature, int topK, float topP, long seed, int maxTokens,
      List<Integer> stopTokenIds, List<String> stopStrings, boolean ignoreEos) {
    this(temperature, topK, topP, seed, maxTokens, stopTokenIds, stopStrings, ignoreEos, 0, 0f);
  }

  /** Greedy decoding of up to {@code maxTokens} tokens. */
  public static SamplingParams greedy(int maxTokens) {
    return new SamplingParams(0f, 0, 1f, 0L, maxTokens, List.of(), List.of(), false);
  }

  public SamplingParams withTemperature(float value) {
    return new SamplingParams(value, topK, topP, seed, maxTokens, stopTokenIds, stopStrings, ignoreEos, minTokens, minP);
  }

  public SamplingParams withTopK(int value) {
    return new SamplingParams(temperature, value, topP, seed, maxTokens, stopTokenIds, stopStrings, ignoreEos, minTokens, minP);
  }

  public SamplingParams withTopP(float value) {
    return new SamplingParams(temperature, topK, value, seed, maxTokens, stopTokenIds, stopStrings, ignoreEos, minTokens, minP);
  }

  public SamplingParams withSeed(long value) {
    return new SamplingParams(temperature, topK, topP, value, maxTokens, stopTokenIds, stopStrings, ignoreEos, minTokens, minP);
  }

  public SamplingParams withMaxTokens(int value) {
    return new SamplingParams(temperature, topK, topP, seed, value, stopTokenIds, stopStrings, ignoreEos, minTokens, minP);
  }

  public SamplingParams withStopTokenIds(List<Integer> value) {
    return new SamplingParams(temperature, topK, topP, seed, maxTokens, value, stopStrings, ignoreEos, minTokens, minP);
  }

  public SamplingParams withMinTokens(int value) {
    return new SamplingParams(temperature, topK, topP, seed, maxTokens, stopTokenIds, stopStrings,
        ignoreEos, value, minP);
  }

  public SamplingParams withMinP(float value) {
    return new SamplingParams(temperature, topK, topP, seed, maxTokens, stopTokenIds, stopStrings,
        ignoreEos, minTokens, value);
  }

  public SamplingParams withIgnoreEos(boolean value) {
    return new SamplingParams(temperature, topK, topP, seed, maxTokens, stopTokenIds, stopStrings, value, minTokens, minP);
  }
}
