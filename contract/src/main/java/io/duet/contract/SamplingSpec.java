package io.duet.contract;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.List;

/**
 * Sampling settings as they travel between services (the engine's {@code SamplingParams}
 * without a dependency on the engine).
 */
public record SamplingSpec(float temperature, int topK, float topP, long seed, int maxTokens,
    List<Integer> stopTokenIds, List<String> stop, boolean ignoreEos) {

  public SamplingSpec {
    stopTokenIds = List.copyOf(stopTokenIds);
    stop = List.copyOf(stop);
  }

  /** Greedy decoding of up to {@code maxTokens} tokens, stopping at EOS. */
  public static SamplingSpec greedy(int maxTokens) {
    return new SamplingSpec(0f, 0, 1f, 0L, maxTokens, List.of(), List.of(), false);
  }

  /** The same settings, generating past EOS (benchmarks, fixed-length tests). */
  public SamplingSpec ignoringEos() {
    return new SamplingSpec(temperature, topK, topP, seed, maxTokens, stopTokenIds, stop, true);
  }

  public JsonObject toJson() {
    return new JsonObject().put("temperature", temperature).put("topK", topK).put("topP", topP)
        .put("seed", seed).put("maxTokens", maxTokens)
        .put("stopTokenIds", new JsonArray(List.copyOf(stopTokenIds)))
        .put("stop", new JsonArray(List.copyOf(stop))).put("ignoreEos", ignoreEos);
  }

  @SuppressWarnings("unchecked")
  public static SamplingSpec fromJson(JsonObject json) {
    return new SamplingSpec(json.getFloat("temperature"), json.getInteger("topK"),
        json.getFloat("topP"), json.getLong("seed"), json.getInteger("maxTokens"),
        json.getJsonArray("stopTokenIds").getList(), json.getJsonArray("stop").getList(),
        json.getBoolean("ignoreEos", false));
  }
}
