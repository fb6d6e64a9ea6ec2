package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * Prefill a prompt, sample its first token and hold its KV for a decode instance to pull.
 *
 * @param prompt the prompt text (the prefill instance tokenizes it, with BOS)
 * @param promptTokens token ids to use instead of {@code prompt}; empty when the text is given
 */
public record PrefillRequest(String requestId, String prompt, int[] promptTokens,
    SamplingSpec sampling) {

  public JsonObject toJson() {
    return Messages.envelope().put("requestId", requestId).put("prompt", prompt)
        .put("promptTokens", Messages.ints(promptTokens)).put("sampling", sampling.toJson());
  }

  public static PrefillRequest fromJson(JsonObject json) {
    Messages.checked(json, "prefill request");
    return new PrefillRequest(json.getString("requestId"), json.getString("prompt"),
        Messages.ints(json.getJsonArray("promptTokens")),
        SamplingSpec.fromJson(json.getJsonObject("sampling")));
  }
}
