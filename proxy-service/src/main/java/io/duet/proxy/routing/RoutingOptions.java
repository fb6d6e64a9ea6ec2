package io.duet.proxy.routing;

import io.vertx.core.json.JsonObject;
import java.util.Objects;

/** Which routing policies {@link Routing} uses, by name, and their parameters. */
public class RoutingOptions {

  /** Least prompt tokens in flight: heartbeat load plus this proxy's own. */
  public static final String DEFAULT_PREFILL_POLICY = "least-prompt-tokens";
  /** Least projected load, (running + waiting + this proxy's own requests) / capacity. */
  public static final String DEFAULT_DECODE_POLICY = "least-load";

  private String prefillPolicy = DEFAULT_PREFILL_POLICY;
  private JsonObject prefillPolicyParams = new JsonObject();
  private String decodePolicy = DEFAULT_DECODE_POLICY;
  private JsonObject decodePolicyParams = new JsonObject();

  public JsonObject toJson() {
    return new JsonObject().put("prefillPolicy", prefillPolicy)
        .put("prefillPolicyParams", prefillPolicyParams.copy()).put("decodePolicy", decodePolicy)
        .put("decodePolicyParams", decodePolicyParams.copy());
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
}
