package io.duet.contract;

import io.vertx.core.json.JsonObject;

/** The requester can take {@code credits} more {@link DecodeEvent}s of a request. */
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
