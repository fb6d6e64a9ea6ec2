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
 * @param coalesce the requester has no use for an event per token (its client gets the whole
 *     answer at its end): once the requester has the request's first text, the decoder may
 *     gather the tokens of several steps into one event, and sends one at least every
 *     {@link #COALESCED_EVENT_MILLIS} while it has text (the requester hears that it lives).
 *     Absent from the messages of older requesters: an event per step, as they expect
 */
public record DecodeRequest(String requestId, KvHandle kv, int firstToken, long samplerState,
    int promptTokens, SamplingSpec sampling, String streamAddress, int initialCredits,
    boolean firstTokenSent, boolean kvStreamed, boolean coalesce) {

  /**
   * How long a decoder holds a {@link #coalesce}d request's text at most: well below the 1 s
   * within which a proxy takes an event as proof that its decode instance lives.
   */
  public static final long COALESCED_EVENT_MILLIS = 250;

  /** A request whose stream starts with the first token. */
  public DecodeRequest(String requestId, KvHandle kv, int firstToken, long samplerState,
      int promptTokens, SamplingSpec sampling, String streamAddress, int initialCredits) {
    this(requestId, kv, firstToken, samplerState, promptTokens, sampling, streamAddress,
        initialCredits, false, false, false);
  }

  public JsonObject toJson() {
    return Messages.envelope().put("requestId", requestId).put("kv", kv.toJson())
        .put("firstToken", firstToken).put("samplerState", samplerState)
        .put("promptTokens", promptTokens).put("sampling", sampling.toJson())
        .put("streamAddress", streamAddress).put("initialCredits", initialCredits)
        .put("firstTokenSent", firstTokenSent).put("kvStreamed", kvStreamed)
        .put("coalesce", coalesce);
  }

  public static DecodeRequest fromJson(JsonObject json) {
    Messages.checked(json, "decode request");
    return new DecodeRequest(json.getString("requestId"), KvHandle.fromJson(json.getJsonObject("kv")),
        json.getInteger("firstToken"), json.getLong("samplerState"),
        json.getInteger("promptTokens"), SamplingSpec.fromJson(json.getJsonObject("sampling")),
        json.getString("streamAddress"), json.getInteger("initialCredits"),
        json.getBoolean("firstTokenSent", false), json.getBoolean("kvStreamed", false),
        json.getBoolean("coalesce", false));
  }
}
