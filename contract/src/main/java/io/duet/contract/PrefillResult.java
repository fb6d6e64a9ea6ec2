package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * A prefilled prompt: its first generated token, the sampler state after drawing it (so the
 * decode instance continues the same random sequence), token counts, and the KV handle.
 *
 * @param kv where to pull the KV; null when the first token ended a request that asked for it
 *     ({@link PrefillRequest#firstTokenFromPrefill}): the KV was freed, there is nothing to pull
 * @param firstText the text the first token adds, as a decode instance would stream it (text
 *     that may be the start of a stop string or of a character is held back); null from an
 *     instance that does not say
 * @param finishReason "stop" or "length" when the first token ends the generation, else null
 */
public record PrefillResult(String requestId, int firstToken, long samplerState, int promptTokens,
    int cachedPromptTokens, KvHandle kv, long queueMicros, long prefillMicros, String firstText,
    String finishReason) {

  /** A result that says nothing of its first token's text. */
  public PrefillResult(String requestId, int firstToken, long samplerState, int promptTokens,
      int cachedPromptTokens, KvHandle kv, long queueMicros, long prefillMicros) {
    this(requestId, firstToken, samplerState, promptTokens, cachedPromptTokens, kv, queueMicros,
        prefillMicros, null, null);
  }

  public JsonObject toJson() {
    JsonObject json = Messages.envelope().put("requestId", requestId)
        .put("firstToken", firstToken).put("samplerState", samplerState)
        .put("promptTokens", promptTokens).put("cachedPromptTokens", cachedPromptTokens)
        .put("queueMicros", queueMicros).put("prefillMicros", prefillMicros);
    if (kv != null) {
      json.put("kv", kv.toJson());
    }
    if (firstText != null) {
      json.put("firstText", firstText);
    }
    if (finishReason != null) {
      json.put("finishReason", finishReason);
    }
    return json;
  }

  public static PrefillResult fromJson(JsonObject json) {
    Messages.checked(json, "prefill result");
    JsonObject kv = json.getJsonObject("kv");
    return new PrefillResult(json.getString("requestId"), json.getInteger("firstToken"),
        json.getLong("samplerState"), json.getInteger("promptTokens"),
        json.getInteger("cachedPromptTokens"), kv == null ? null : KvHandle.fromJson(kv),
        json.getLong("queueMicros"), json.getLong("prefillMicros"), json.getString("firstText"),
        json.getString("finishReason"));
  }
}
