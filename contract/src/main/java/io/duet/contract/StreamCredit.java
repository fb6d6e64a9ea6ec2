package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * The requester can take {@code credits} more {@link DecodeEvent}s of a request: sent by a proxy
 * to a decode instance's control address, and by an event-bus client to the proxy control
 * address its {@link CompletionAccepted} named. The sender of the events never sends more than
 * it was granted (the initial credits of the request plus every grant); while it has no credit
 * it coalesces what it has into the next event.
 */
public record StreamCredit(String requestId, int credits) {

  public JsonObject toJson() {
    return Messages.envelope().put("type", "credit").put("requestId", requestId)
        .put("credits", credits);
  }

  public static StreamCredit fromJson(JsonObject json) {
    Messages.checked(json, "stream credit");
    return new StreamCredit(json.getString("requestId"), json.getInteger("credits"));
  }
}
