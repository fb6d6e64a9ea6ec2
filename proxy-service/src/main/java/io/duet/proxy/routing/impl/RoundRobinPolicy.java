package io.duet.proxy.routing.impl;

import io.duet.proxy.routing.PrefillCandidate;
import io.duet.proxy.routing.PrefillPolicy;
import io.duet.proxy.routing.PrefillPolicyFactory;
import io.duet.proxy.routing.RoutingRequest;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@value #NAME}: each request goes to the next prefill instance in registry order, whatever
 * their load, so that instances of equal speed take equal shares. One turn counter serves every
 * event loop of the proxy; when instances join or leave, the turn carries on over the new list.
 * No parameters.
 */
public final class RoundRobinPolicy implements PrefillPolicy {

  public static final String NAME = "round-robin";

  private final AtomicLong turn = new AtomicLong();

  @Override
  public Optional<PrefillCandidate> choose(RoutingRequest request,
      List<PrefillCandidate> candidates) {
    return Optional.of(candidates.get(Math.floorMod(turn.getAndIncrement(), candidates.size())));
  }

  /** Registered in {@code META-INF/services/io.duet.proxy.routing.PrefillPolicyFactory}. */
  public static final class Factory extends ParameterlessPolicyFactory<PrefillPolicy>
      implements PrefillPolicyFactory {

    public Factory() {
      super(NAME, RoundRobinPolicy::new);
    }
  }
}
