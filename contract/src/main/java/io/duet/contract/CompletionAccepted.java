package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * A proxy took a {@link CompletionRequest}: the request's id (the client's own, or the one the
 * proxy chose) and the proxy's control address for it, where the client sends its
 * {@link StreamCredit}s and, to stop the request, a {@link Cancel}.
 */
public record CompletionAccepted(String requestId, String controlAddress) {

  public JsonObject toJson() {
    return Messages.envelope().put("requestId", requestId).put("controlAddress", controlAddress);
  }

  public static CompletionAccepted fromJson(JsonObject json) {
    Messages.checked(json, "completion accepted");
    return new CompletionAccepted(json.getString("requestId"), json.getString("controlAddress"));
  }
}
