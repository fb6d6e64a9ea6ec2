package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * Stop working on a request and free what it holds: a queued or running prefill, a KV lease
 * (by {@code transferId}, when the KV will never be pulled), or a running decode. An event-bus
 * client sends one (with its request id) as a request to the proxy control address its
 * {@link CompletionAccepted} named; the reply is the stream's last {@link DecodeEvent}.
 */
public record Cancel(String requestId, String transferId, String reason) {

  public JsonObject toJson() {
    return Messages.envelope().put("type", "cancel").put("requestId", requestId)
        .put("transferId", transferId).put("reason", reason);
  }

  public static Cancel fromJson(JsonObject json) {
    Messages.checked(json, "cancel");
    return new Cancel(json.getString("requestId"), json.getString("transferId"),
        json.getString("reason"));
  }

  /** Control addresses carry several message kinds; this tells a cancel apart. */
  public static boolean isCancel(JsonObject json) {
    return "cancel".equals(json.getString("type"));
  }
}
