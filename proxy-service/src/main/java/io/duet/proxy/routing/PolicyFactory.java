package io.duet.proxy.routing;

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
}
