package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * Prefill a prompt, sample its first token and hold its KV for a decode instance to pull.
 *
 * @param prompt the prompt text (the prefill instance tokenizes it, with BOS)
 * @param promptTokens token ids to use instead of {@code prompt}; empty when the text is given
 * @param firstTokenFromPrefill the requester streams the first token from the result: when that
 *     token ends the request ({@code max_tokens} 1, an end token, a stop string), the prefill
 *     instance frees the KV at once instead of leasing it, and the result has no KV handle
 * @param streamKv lease the KV before computing it and serve it layer by layer as it is
 *     computed: the instance answers first with a {@link PrefillStarted} (the lease's handle)
 *     as soon as the prompt's batch starts, a reply that expects a reply; the requester answers
 *     it (any body) once it has handed the handle on, and the {@link PrefillResult} comes as the
 *     reply to that answer. Failing that answer cancels the request. Only with
 *     {@code firstTokenFromPrefill}, and only to instances that announce
 *     {@link InstanceInfo#KV_LAYER_STREAMING}
 */
public record PrefillRequest(String requestId, String prompt, int[] promptTokens,
    SamplingSpec sampling, boolean firstTokenFromPrefill, boolean streamKv) {

  /** A request whose KV is always leased for a decode instance, whatever its first token. */
  public PrefillRequest(String requestId, String prompt, int[] promptTokens,
      SamplingSpec sampling) {
    this(requestId, prompt, promptTokens, sampling, false, false);
  }

  public JsonObject toJson() {
    return Messages.envelope().put("requestId", requestId).put("prompt", prompt)
        .put("promptTokens", Messages.ints(promptTokens)).put("sampling", sampling.toJson())
        .put("firstTokenFromPrefill", firstTokenFromPrefill).put("streamKv", streamKv);
  }

  public static PrefillRequest fromJson(JsonObject json) {
    Messages.checked(json, "prefill request");
    return new PrefillRequest(json.getString("requestId"), json.getString("prompt"),
        Messages.ints(json.getJsonArray("promptTokens")),
        SamplingSpec.fromJson(json.getJsonObject("sampling")),
        json.getBoolean("firstTokenFromPrefill", false), json.getBoolean("streamKv", false));
  }
}
