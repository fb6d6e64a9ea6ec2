package io.duet.proxy.routing;

import io.micrometer.core.instrument.MeterRegistry;
import io.vertx.core.json.JsonObject;

/**
 * Makes a routing policy from its parameters. Implementations are found with
 * {@link java.util.ServiceLoader} through {@link PrefillPolicyFactory} or
 * {@link DecodePolicyFactory}: a public class with a public no-argument constructor, named in a
 * {@code META-INF/services} file of that interface's name.
 *
 * @param <P> the kind of policy made
 */
public interface PolicyFactory<P> {

  /** The name the configuration selects the policy by; unique among policies of its kind. */
  String name();

  /**
   * A new policy.
   *
   * @param params the policy's parameters from the configuration, empty when none are given
   * @throws IllegalArgumentException naming the parameter, when one is missing, unknown or wrong
   */
  P create(JsonObject params);

  /**
   * A new policy that may count what it does in the proxy's {@code metrics} (beyond the
   * decisions, which the proxy counts for every policy). By default {@link #create(JsonObject)}.
   *
   * @throws IllegalArgumentException as {@link #create(JsonObject)}
   */
  default P create(JsonObject params, MeterRegistry metrics) {
    return create(params);
  }
}
