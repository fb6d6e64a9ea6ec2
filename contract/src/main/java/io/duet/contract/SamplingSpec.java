package io.duet.contract;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.List;

/**
 * Sampling settings as they travel between services (the engine's {@code SamplingParams}
 * without a dependency on the engine).
 *
 * @param maxTokensAsked whether the client asked for {@code maxTokens}: then a prompt that
 *     leaves less room in the context is refused (as OpenAI and vLLM do); a default
 *     {@code maxTokens} is cut short by the context instead
 * @param minTokens tokens generated before a stop or end token may be sampled (vLLM's
 *     {@code min_tokens})
 * @param minP vLLM's {@code min_p}; 0 disables it
 */
public record SamplingSpec(float temperature, int topK, float topP, long seed, int maxTokens,
    List<Integer> stopTokenIds, List<String> stop, boolean ignoreEos, boolean maxTokensAsked,
    int minTokens, float minP) {

  public SamplingSpec {
    stopTokenIds = List.copyOf(stopTokenIds);
    stop = List.copyOf(stop);
  }

  /** Settings with a default {@code maxTokens}, without {@code minTokens} and {@code minP}. */
  public SamplingSpec(float temperature, int topK, float topP, long seed, int maxTokens,
      List<Integer> stopTokenIds, List<String> stop, boolean ignoreEos) {
    this(temperature, topK, topP, seed, maxTokens, stopTokenIds, stop, ignoreEos, false, 0, 0f);
  }

  /** Greedy decoding of up to {@code maxTokens} tokens, stopping at EOS. */
  public static SamplingSpec greedy(int maxTokens) {
    return new SamplingSpec(0f, 0, 1f, 0L, maxTokens, List.of(), List.of(), false);
  }

  /** The same settings, generating past EOS (benchmarks, fixed-length tests). */
  public SamplingSpec ignoringEos() {
    return new SamplingSpec(temperature, topK, topP, seed, maxTokens, stopTokenIds, stop, true,
        maxTokensAsked, minTokens, minP);
  }

  /** The same settings with another seed (each of a request's {@code n} choices has its own). */
  public SamplingSpec withSeed(long otherSeed) {
    return new SamplingSpec(temperature, topK, topP, otherSeed, maxTokens, stopTokenIds, stop,
        ignoreEos, maxTokensAsked, minTokens, minP);
  }

  public JsonObject toJson() {
    return new JsonObject().put("temperature", temperature).put("topK", topK).put("topP", topP)
        .put("seed", seed).put("maxTokens", maxTokens)
        .put("stopTokenIds", new JsonArray(List.copyOf(stopTokenIds)))
        .put("stop", new JsonArray(List.copyOf(stop))).put("ignoreEos", ignoreEos)
        .put("maxTokensAsked", maxTokensAsked).put("minTokens", minTokens).put("minP", minP);
  }

  @SuppressWarnings("unchecked")
  public static SamplingSpec fromJson(JsonObject json) {
    return new SamplingSpec(json.getFloat("temperature"), json.getInteger("topK"),
        json.getFloat("topP"), json.getLong("seed"), json.getInteger("maxTokens"),
        json.getJsonArray("stopTokenIds").getList(), json.getJsonArray("stop").getList(),
        json.getBoolean("ignoreEos", false), json.getBoolean("maxTokensAsked", false),
        json.getInteger("minTokens", 0), json.getFloat("minP", 0f));
  }
}
