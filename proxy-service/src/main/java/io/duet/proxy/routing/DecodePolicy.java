package io.duet.proxy.routing;

import java.util.List;
import java.util.Optional;

/**
 * Chooses the decode target (instance and data-parallel rank) of each request. Made by a
 * {@link DecodePolicyFactory} and selected by name in the configuration
 * ({@code proxy.decode-policy}). Called from every event loop of the proxy at once: an
 * implementation keeps no state of its own that calls change, or makes it thread-safe.
 */
@FunctionalInterface
public interface DecodePolicy {

  /**
   * @param candidates the live decode targets that serve the request's model with the KV layout
   *     of its prefill instance, less those that already refused the request, in registry order
   *     (by instance id); never empty. Which targets are compatible is the proxy's rule, not the
   *     policy's: a policy only ranks them.
   * @return one of {@code candidates}; empty to refuse them all (the request then fails as
   *     UNAVAILABLE)
   */
  Optional<DecodeCandidate> choose(RoutingRequest request, List<DecodeCandidate> candidates);
}
