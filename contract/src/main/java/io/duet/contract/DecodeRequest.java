package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * Pull a prefilled sequence's KV and decode it. Tokens are streamed as {@link DecodeEvent}s to
 * {@code streamAddress}; the decoder sends at most {@code initialCredits} events before the
 * requester grants more with {@link StreamCredit}.
 *
 * @param firstTokenSent the requester already streamed {@code firstToken}'s text (from the
 *     {@link PrefillResult}): the stream leaves it out, its count still counts
 * @param kvStreamed the KV is being computed ({@link PrefillRequest#streamKv}): it arrives as
 *     the prefill instance computes it, and its stream ends with the first token and the
 *     sampler state, which {@code firstToken} and {@code samplerState} then do not carry
 */
public record DecodeRequest(String requestId, KvHandle kv, int firstToken, long samplerState,
    int promptTokens, SamplingSpec sampling, String streamAddress, int initialCredits,
    boolean firstTokenSent, boolean kvStreamed) {

  /** A request whose stream starts with the first token. */
  public DecodeRequest(String requestId, KvHandle kv, int firstToken, long samplerState,
      int promptTokens, SamplingSpec sampling, String streamAddress, int initialCredits) {
    this(requestId, kv, firstToken, samplerState, promptTokens, sampling, streamAddress,
        initialCredits, false, false);
  }

  public JsonObject toJson() {
    return Messages.envelope().put("requestId", requestId).put("kv", kv.toJson())
        .put("firstToken", firstToken).put("samplerState", samplerState)
        .put("promptTokens", promptTokens).put("sampling", sampling.toJson())
        .put("streamAddress", streamAddress).put("initialCredits", initialCredits)
        .put("firstTokenSent", firstTokenSent).put("kvStreamed", kvStreamed);
  }

  public static DecodeRequest fromJson(JsonObject json) {
    Messages.checked(json, "decode request");
    return new DecodeRequest(json.getString("requestId"), KvHandle.fromJson(json.getJsonObject("kv")),
        json.getInteger("firstToken"), json.getLong("samplerState"),
        json.getInteger("promptTokens"), SamplingSpec.fromJson(json.getJsonObject("sampling")),
        json.getString("streamAddress"), json.getInteger("initialCredits"),
        json.getBoolean("firstTokenSent", false), json.getBoolean("kvStreamed", false));
  }
}
