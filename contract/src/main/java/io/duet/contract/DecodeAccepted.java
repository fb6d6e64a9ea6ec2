package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * The decode instance took the request: {@code waiting} is 0 when it was admitted into the
 * batch at once, else its 1-based place in the waiting queue.
 */
public record DecodeAccepted(String requestId, String decodeInstanceId, int waiting) {

  public JsonObject toJson() {
    return Messages.envelope().put("requestId", requestId)
        .put("decodeInstanceId", decodeInstanceId).put("waiting", waiting);
  }

  public static DecodeAccepted fromJson(JsonObject json) {
    Messages.checked(json, "decode accepted");
    return new DecodeAccepted(json.getString("requestId"), json.getString("decodeInstanceId"),
        json.getInteger("waiting"));
  }
}
