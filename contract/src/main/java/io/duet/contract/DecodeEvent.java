package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * One step of a decode stream: from a decode instance to the proxy, and from a proxy to an
 * event-bus client ({@link CompletionRequest}). Events of a request are numbered from 0; several
 * tokens may be coalesced into one event when the requester is slow to grant credits (see
 * {@link StreamCredit}), or asked for it ({@link DecodeRequest#coalesce}). The last event has a
 * {@code finishReason} ("stop", "length") or a {@code failure} with its {@code error} text.
 *
 * @param text text added since the previous event (may be empty)
 * @param tokens tokens generated since the previous event
 * @param completionTokens tokens generated so far in total
 * @param failure a {@link Failure} name when the decode failed, else null
 * @param queueMicros on the first event from a decode instance: how long the request waited
 *     there before its KV pull started; -1 on the others, and on the events a proxy sends
 * @param kvPullMicros on that event: how long the KV pull and import took; -1 on the others
 */
public record DecodeEvent(String requestId, int sequence, String text, int tokens,
    int completionTokens, int promptTokens, String finishReason, String failure, String error,
    long queueMicros, long kvPullMicros) {

  /** An event without the decode instance's timing. */
  public DecodeEvent(String requestId, int sequence, String text, int tokens,
      int completionTokens, int promptTokens, String finishReason, String failure, String error) {
    this(requestId, sequence, text, tokens, completionTokens, promptTokens, finishReason, failure,
        error, -1, -1);
  }

  public boolean isLast() {
    return finishReason != null || failure != null;
  }

  public JsonObject toJson() {
    JsonObject json = Messages.envelope().put("requestId", requestId).put("sequence", sequence)
        .put("text", text).put("tokens", tokens).put("completionTokens", completionTokens)
        .put("promptTokens", promptTokens);
    if (finishReason != null) {
      json.put("finishReason", finishReason);
    }
    if (failure != null) {
      json.put("failure", failure).put("error", error);
    }
    if (queueMicros >= 0) {
      json.put("queueMicros", queueMicros).put("kvPullMicros", kvPullMicros);
    }
    return json;
  }

  public static DecodeEvent fromJson(JsonObject json) {
    Messages.checked(json, "decode event");
    return new DecodeEvent(json.getString("requestId"), json.getInteger("sequence"),
        json.getString("text"), json.getInteger("tokens"), json.getInteger("completionTokens"),
        json.getInteger("promptTokens"), json.getString("finishReason"),
        json.getString("failure"), json.getString("error"), json.getLong("queueMicros", -1L),
        json.getLong("kvPullMicros", -1L));
  }
}
