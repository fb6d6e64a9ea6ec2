package io.duet.proxy.routing;

import java.util.List;
import java.util.Optional;

/**
 * Chooses the prefill instance of each request. Made by a {@link PrefillPolicyFactory} and
 * selected by name in the configuration ({@code proxy.prefill-policy}). Called from every event
 * loop of the proxy at once: an implementation keeps no state of its own that calls change, or
 * makes it thread-safe.
 */
@FunctionalInterface
public interface PrefillPolicy {

  /**
   * @param candidates the live prefill instances that serve the request's model, in registry
   *     order (by instance id); never empty. Which instances are compatible is the proxy's
   *     rule, not the policy's: a policy only ranks them.
   * @return one of {@code candidates}; empty to refuse them all (the request then fails as
   *     UNAVAILABLE)
   */
  Optional<PrefillCandidate> choose(RoutingRequest request, List<PrefillCandidate> candidates);
}
