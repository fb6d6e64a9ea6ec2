package io.duet.proxy.routing;

import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * Chooses the decode target (instance and data-parallel rank) of each request, and the order in
 * which requests waiting for a decode slot are served. Made by a {@link DecodePolicyFactory} and
 * selected by name in the configuration ({@code proxy.decode-policy}). Called from every event
 * loop of the proxy at once: an implementation keeps no state of its own that calls change, or
 * makes it thread-safe.
 */
@FunctionalInterface
public interface DecodePolicy {

  /** Every request ranks equal: the waiting requests are served first come, first served. */
  Comparator<RoutingRequest> FIRST_COME_FIRST_SERVED = (a, b) -> 0;

  /**
   * @param candidates the live decode targets that serve the request's model with the KV layout
   *     of its prefill instance, less those that already refused the request and those that hold
   *     as many of this proxy's requests as the per-target cap allows, in registry order (by
   *     instance id, then rank); never empty. Which targets are compatible is the proxy's rule,
   *     not the policy's: a policy only ranks them.
   * @return one of {@code candidates}; empty to refuse them all (the request then waits for a
   *     slot when some compatible target is at its cap, else fails as UNAVAILABLE)
   */
  Optional<DecodeCandidate> choose(RoutingRequest request, List<DecodeCandidate> candidates);

  /**
   * The order in which the requests waiting in the proxy for a decode slot get one, first the
   * smallest; requests it ranks equal go first come, first served. Called under the lock of the
   * proxy's queue: it must be quick and consistent. By default {@link #FIRST_COME_FIRST_SERVED}.
   */
  default Comparator<RoutingRequest> waitingOrder() {
    return FIRST_COME_FIRST_SERVED;
  }
}
