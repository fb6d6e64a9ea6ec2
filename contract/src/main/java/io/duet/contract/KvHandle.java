package io.duet.contract;

import io.vertx.core.json.JsonObject;

/**
 * Where and how a decode instance pulls the KV of one prefilled sequence: the prefill
 * instance's KV endpoint, an unguessable transfer id that names the leased blocks, the layout
 * fingerprint the receiver must match, and the lease's pull key.
 *
 * <p>The pull key opens the lease: it goes from the prefill instance to the proxy (in the
 * prefill result) and from the proxy to the one decode instance it chose (in the decode
 * request), and must travel in nothing else, neither logs nor broadcasts nor answers to
 * clients. It is null when the cluster has a secret, from which the key is derived instead.
 */
public record KvHandle(String prefillInstanceId, String host, int port, String transferId,
    int blockCount, int tokenCount, String fingerprint, long leaseExpiresAtMillis,
    String pullKey) {

  public JsonObject toJson() {
    JsonObject json = new JsonObject().put("prefillInstanceId", prefillInstanceId)
        .put("host", host).put("port", port).put("transferId", transferId)
        .put("blockCount", blockCount).put("tokenCount", tokenCount)
        .put("fingerprint", fingerprint).put("leaseExpiresAtMillis", leaseExpiresAtMillis);
    return pullKey == null ? json : json.put("pullKey", pullKey);
  }

  public static KvHandle fromJson(JsonObject json) {
    return new KvHandle(json.getString("prefillInstanceId"), json.getString("host"),
        json.getInteger("port"), json.getString("transferId"), json.getInteger("blockCount"),
        json.getInteger("tokenCount"), json.getString("fingerprint"),
        json.getLong("leaseExpiresAtMillis"), json.getString("pullKey"));
  }

  /** Without its pull key and the transfer id: what may be shown or logged. */
  @Override
  public String toString() {
    return "KvHandle[" + prefillInstanceId + " " + host + ":" + port + ", " + tokenCount
        + " tokens in " + blockCount + " blocks, " + fingerprint + "]";
  }
}
