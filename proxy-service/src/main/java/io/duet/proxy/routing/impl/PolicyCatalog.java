package io.duet.proxy.routing.impl;

import io.duet.proxy.routing.PolicyFactory;
import io.micrometer.core.instrument.MeterRegistry;
import io.vertx.core.json.JsonObject;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.TreeMap;

/**
 * The routing policies of one kind by name: every factory that {@link ServiceLoader} finds for
 * the kind's service type, so a policy in another jar, or in test code, is added by registering
 * its factory in a {@code META-INF/services} file and nothing else.
 *
 * @param <P> the kind of policy
 */
public final class PolicyCatalog<P> {

  private final String kind;
  private final Map<String, PolicyFactory<P>> factories = new TreeMap<>();

  /**
   * @param kind what the policies choose ({@code prefill}, {@code decode}), for messages
   * @throws IllegalStateException when two factories have one name
   */
  PolicyCatalog(String kind, Iterable<? extends PolicyFactory<P>> found) {
    this.kind = kind;
    for (PolicyFactory<P> factory : found) {
      PolicyFactory<P> other = factories.put(factory.name(), factory);
      if (other != null) {
        throw new IllegalStateException("two " + kind + " routing policies are named '"
            + factory.name() + "': " + other.getClass().getName() + " and "
            + factory.getClass().getName());
      }
    }
  }

  /** The factories of {@code type} on the thread's context class loader. */
  public static <P> PolicyCatalog<P> load(String kind, Class<? extends PolicyFactory<P>> type) {
    return new PolicyCatalog<>(kind, ServiceLoader.load(type));
  }

  /** The names of the policies, sorted. */
  public Set<String> names() {
    return factories.keySet();
  }

  /**
   * A new policy.
   *
   * @param metrics where the policy may count what it does
   * @throws IllegalArgumentException for an unknown name (the message lists the known ones) or
   *     parameters the policy does not take
   */
  public P create(String name, JsonObject params, MeterRegistry metrics) {
    PolicyFactory<P> factory = factories.get(name);
    if (factory == null) {
      throw new IllegalArgumentException("unknown " + kind + " routing policy '" + name
          + "'; known " + kind + " policies: " + String.join(", ", names()));
    }
    return factory.create(params.copy(), metrics);
  }
}
