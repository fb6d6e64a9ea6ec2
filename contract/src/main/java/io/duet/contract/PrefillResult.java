package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * A prefilled prompt: its first generated token, the sampler state after drawing it (so the
 * decode instance continues the same random sequence), token counts, and the KV handle.
 */
public record PrefillResult(String requestId, int firstToken, long samplerState, int promptTokens,
    int cachedPromptTokens, KvHandle kv, long queueMicros, long prefillMicros) {

  public JsonObject toJson() {
    return Messages.envelope().put("requestId", requestId).put("firstToken", firstToken)
        .put("samplerState", samplerState).put("promptTokens", promptTokens)
        .put("cachedPromptTokens", cachedPromptTokens).put("kv", kv.toJson())
        .put("queueMicros", queueMicros).put("prefillMicros", prefillMicros);
  }

  public static PrefillResult fromJson(JsonObject json) {
    Messages.checked(json, "prefill result");
    return new PrefillResult(json.getString("requestId"), json.getInteger("firstToken"),
        json.getLong("samplerState"), json.getInteger("promptTokens"),
        json.getInteger("cachedPromptTokens"), KvHandle.fromJson(json.getJsonObject("kv")),
        json.getLong("queueMicros"), json.getLong("prefillMicros"));
  }
}
