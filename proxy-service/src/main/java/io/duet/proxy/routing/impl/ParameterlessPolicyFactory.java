package io.duet.proxy.routing.impl;

import io.duet.proxy.routing.PolicyFactory;
import io.vertx.core.json.JsonObject;
import java.util.function.Supplier;

/** Makes a policy that takes no parameters, and refuses any rather than ignore them. */
abstract class ParameterlessPolicyFactory<P> implements PolicyFactory<P> {

  private final String name;
  private final Supplier<P> policy;

  ParameterlessPolicyFactory(String name, Supplier<P> policy) {
    this.name = name;
    this.policy = policy;
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public P create(JsonObject params) {
    if (!params.isEmpty()) {
      throw new IllegalArgumentException("routing policy " + name + " takes no parameters, got "
          + params.encode());
    }
    return policy.get();
  }
}
