package io.duet.proxy.routing.impl;

import io.duet.proxy.routing.PrefillCandidate;
import io.duet.proxy.routing.PrefillPolicy;
import io.duet.proxy.routing.PrefillPolicyFactory;
import io.duet.proxy.routing.RoutingRequest;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * {@value #NAME}: the prefill instance with the fewest prompt tokens in flight, those of its
 * last heartbeat plus those this proxy has sent it since, as the reference deployment balances
 * prefill. Ties go to the first in registry order. No parameters.
 */
public final class LeastPromptTokensPolicy implements PrefillPolicy {

  public static final String NAME = "least-prompt-tokens";

  @Override
  public Optional<PrefillCandidate> choose(RoutingRequest request,
      List<PrefillCandidate> candidates) {
    // min keeps the first of equal elements
    return candidates.stream().min(Comparator.comparingLong(LeastPromptTokensPolicy::inFlight));
  }

  /** A candidate's prompt tokens in flight: its heartbeat's and this proxy's since. */
  static long inFlight(PrefillCandidate candidate) {
    return candidate.entry().load().inFlightTokens() + candidate.localPromptTokens();
  }

  /** Registered in {@code META-INF/services/io.duet.proxy.routing.PrefillPolicyFactory}. */
  public static final class Factory extends ParameterlessPolicyFactory<PrefillPolicy>
      implements PrefillPolicyFactory {

    public Factory() {
      super(NAME, LeastPromptTokensPolicy::new);
    }
  }
}
