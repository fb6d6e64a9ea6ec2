package io.duet.proxy.routing.impl;

import io.duet.contract.InstanceInfo;
import io.duet.proxy.routing.DecodeCandidate;
import io.duet.proxy.routing.DecodePolicy;
import io.duet.proxy.routing.DecodePolicyFactory;
import io.duet.proxy.routing.RoutingRequest;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * {@value #NAME}: the decode target with the least projected load, (running + waiting + the
 * requests this proxy has in flight on it) / its capacity ({@code max-num-seqs}), so that targets
 * of different sizes fill evenly. Ties go to the first in registry order. No parameters.
 */
public final class LeastLoadPolicy implements DecodePolicy {

  public static final String NAME = "least-load";

  @Override
  public Optional<DecodeCandidate> choose(RoutingRequest request,
      List<DecodeCandidate> candidates) {
    // min keeps the first of equal elements
    return candidates.stream().min(Comparator.comparingDouble(LeastLoadPolicy::projectedLoad));
  }

  private static double projectedLoad(DecodeCandidate candidate) {
    InstanceInfo.Load load = candidate.entry().load();
    return (load.running() + load.waiting() + candidate.localRequests())
        / (double) Math.max(1, candidate.entry().capacity());
  }

  /** Registered in {@code META-INF/services/io.duet.proxy.routing.DecodePolicyFactory}. */
  public static final class Factory extends ParameterlessPolicyFactory<DecodePolicy>
      implements DecodePolicyFactory {

    public Factory() {
      super(NAME, LeastLoadPolicy::new);
    }
  }
}
