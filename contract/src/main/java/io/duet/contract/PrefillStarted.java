package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * The first answer to a {@link PrefillRequest} that asked for {@link PrefillRequest#streamKv}:
 * the prompt's batch has started, and its KV can be pulled from {@code kv} as it is computed.
 * The handle carries the pull key as a prefill result's does, and travels the same way: to the
 * requester, then to the one decode instance it chooses.
 */
public record PrefillStarted(String requestId, KvHandle kv) {

  /** The field that tells this answer from a {@link PrefillResult}. */
  static final String MARK = "started";

  public JsonObject toJson() {
    return Messages.envelope().put(MARK, true).put("requestId", requestId)
        .put("kv", kv.toJson());
  }

  /** Whether {@code json} is a prefill instance's {@link PrefillStarted}, not its result. */
  public static boolean is(JsonObject json) {
    return json.getBoolean(MARK, false);
  }

  public static PrefillStarted fromJson(JsonObject json) {
    Messages.checked(json, "prefill started");
    return new PrefillStarted(json.getString("requestId"),
        KvHandle.fromJson(json.getJsonObject("kv")));
  }
}
