package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * Where and how a decode instance pulls the KV of one prefilled sequence: the prefill
 * instance's KV endpoint, an unguessable transfer id that names the leased blocks, and the
 * layout fingerprint the receiver must match.
 */
public record KvHandle(String prefillInstanceId, String host, int port, String transferId,
    int blockCount, int tokenCount, String fingerprint, long leaseExpiresAtMillis) {

  public JsonObject toJson() {
    return new JsonObject().put("prefillInstanceId", prefillInstanceId).put("host", host)
        .put("port", port).put("transferId", transferId).put("blockCount", blockCount)
        .put("tokenCount", tokenCount).put("fingerprint", fingerprint)
        .put("leaseExpiresAtMillis", leaseExpiresAtMillis);
  }

  public static KvHandle fromJson(JsonObject json) {
    return new KvHandle(json.getString("prefillInstanceId"), json.getString("host"),
        json.getInteger("port"), json.getString("transferId"), json.getInteger("blockCount"),
        json.getInteger("tokenCount"), json.getString("fingerprint"),
        json.getLong("leaseExpiresAtMillis"));
  }
}
