package io.duet.proxy.routing.impl;

import io.duet.proxy.routing.DecodeCandidate;
import io.duet.proxy.routing.DecodePolicy;
import io.duet.proxy.routing.DecodePolicyFactory;
import io.duet.proxy.routing.RoutingRequest;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * {@value #NAME}: the reference proxy's placement of decode work (longest processing time
 * first). Of the requests waiting for a decode slot, the one with the most prompt and
 * {@code max_tokens} tokens goes first; each request goes to the decode target with the fewest
 * tokens in flight: the tokens its last heartbeat holds in KV plus the prompt and generation
 * tokens of this proxy's requests on it. Placing the largest jobs first, each on the least
 * loaded target, keeps the targets' token loads even. Ties go to the first in registry order.
 * No parameters.
 */
public final class LongestFirstPolicy implements DecodePolicy {

  public static final String NAME = "longest-first";

  private static final Comparator<RoutingRequest> LARGEST_FIRST =
      Comparator.comparingLong(RoutingRequest::decodeTokens).reversed();

  @Override
  public Optional<DecodeCandidate> choose(RoutingRequest request,
      List<DecodeCandidate> candidates) {
    // min keeps the first of equal elements
    return candidates.stream().min(Comparator.comparingLong(LongestFirstPolicy::tokensInFlight));
  }

  @Override
  public Comparator<RoutingRequest> waitingOrder() {
    return LARGEST_FIRST;
  }

  private static long tokensInFlight(DecodeCandidate candidate) {
    return candidate.entry().load().inFlightTokens() + candidate.localTokens();
  }

  /** Registered in {@code META-INF/services/io.duet.proxy.routing.DecodePolicyFactory}. */
  public static final class Factory extends ParameterlessPolicyFactory<DecodePolicy>
      implements DecodePolicyFactory {

    public Factory() {
      super(NAME, LongestFirstPolicy::new);
    }
  }
}
