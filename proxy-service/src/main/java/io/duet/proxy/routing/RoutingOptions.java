package io.duet.proxy.routing;

import io.duet.cluster.Settings;
import io.vertx.core.json.JsonObject;
import java.util.Objects;

/**
 * How {@link Routing} routes: the policies, by name, and their parameters; the per-target cap
 * on this proxy's decode requests and the bound of the queue of requests waiting under it. The
 * defaults are those of the settings declared in {@link Settings}.
 */
public class RoutingOptions {

  /** Least prompt tokens in flight: heartbeat load plus this proxy's own. */
  public static final String DEFAULT_PREFILL_POLICY = Settings.PROXY_PREFILL_POLICY.defaultValue();
  /** Least projected load, (running + waiting + this proxy's own requests) / capacity. */
  public static final String DEFAULT_DECODE_POLICY = Settings.PROXY_DECODE_POLICY.defaultValue();
  /** {@link Settings#PROXY_DECODE_RANK_CAP}: the reference deployment's "proxy batch size". */
  public static final int DEFAULT_DECODE_RANK_CAP = Settings.PROXY_DECODE_RANK_CAP.defaultValue();
  /** {@link Settings#PROXY_QUEUE_SIZE}. */
  public static final int DEFAULT_QUEUE_SIZE = Settings.PROXY_QUEUE_SIZE.defaultValue();

  private String prefillPolicy = DEFAULT_PREFILL_POLICY;
  private JsonObject prefillPolicyParams = new JsonObject();
  private String decodePolicy = DEFAULT_DECODE_POLICY;
  private JsonObject decodePolicyParams = new JsonObject();
  private int decodeRankCap = DEFAULT_DECODE_RANK_CAP;
  private int queueSize = DEFAULT_QUEUE_SIZE;

  public JsonObject toJson() {
    return new JsonObject().put("prefillPolicy", prefillPolicy)
        .put("prefillPolicyParams", prefillPolicyParams.copy()).put("decodePolicy", decodePolicy)
        .put("decodePolicyParams", decodePolicyParams.copy()).put("decodeRankCap", decodeRankCap)
        .put("queueSize", queueSize);
  }

  public String getPrefillPolicy() {
    return prefillPolicy;
  }

  public RoutingOptions setPrefillPolicy(String name) {
    this.prefillPolicy = Objects.requireNonNull(name, "prefillPolicy");
    return this;
  }

  /** A copy of the prefill policy's parameters. */
  public JsonObject getPrefillPolicyParams() {
    return prefillPolicyParams.copy();
  }

  public RoutingOptions setPrefillPolicyParams(JsonObject params) {
    this.prefillPolicyParams = Objects.requireNonNull(params, "prefillPolicyParams").copy();
    return this;
  }

  public String getDecodePolicy() {
    return decodePolicy;
  }

  public RoutingOptions setDecodePolicy(String name) {
    this.decodePolicy = Objects.requireNonNull(name, "decodePolicy");
    return this;
  }

  /** A copy of the decode policy's parameters. */
  public JsonObject getDecodePolicyParams() {
    return decodePolicyParams.copy();
  }

  public RoutingOptions setDecodePolicyParams(JsonObject params) {
    this.decodePolicyParams = Objects.requireNonNull(params, "decodePolicyParams").copy();
    return this;
  }

  public int getDecodeRankCap() {
    return decodeRankCap;
  }

  /**
   * The most requests this proxy keeps in flight on one decode target; further ones wait in its
   * queue.
   *
   * @throws IllegalArgumentException when it is not allowed by {@link Settings#PROXY_DECODE_RANK_CAP}
   */
  public RoutingOptions setDecodeRankCap(int cap) {
    this.decodeRankCap = Settings.PROXY_DECODE_RANK_CAP.requireValid(cap);
    return this;
  }

  public int getQueueSize() {
    return queueSize;
  }

  /**
   * The most requests that may wait in this proxy for a decode slot; further ones are refused.
   *
   * @throws IllegalArgumentException when it is not allowed by {@link Settings#PROXY_QUEUE_SIZE}
   */
  public RoutingOptions setQueueSize(int size) {
    this.queueSize = Settings.PROXY_QUEUE_SIZE.requireValid(size);
    return this;
  }
}
