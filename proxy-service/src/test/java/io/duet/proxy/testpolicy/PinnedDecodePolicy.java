package io.duet.proxy.testpolicy;

import io.duet.proxy.routing.DecodeCandidate;
import io.duet.proxy.routing.DecodePolicy;
import io.duet.proxy.routing.DecodePolicyFactory;
import io.duet.proxy.routing.RoutingRequest;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.Optional;

/**
 * A decode policy that only the tests have, registered in their own
 * {@code META-INF/services/io.duet.proxy.routing.DecodePolicyFactory}: it shows that a policy
 * outside the proxy's code is added by registration alone. {@value #NAME} sends every request
 * to the decode instance its parameter {@code instance} names, however loaded that instance is,
 * and refuses the request when that instance is not a candidate.
 */
public final class PinnedDecodePolicy implements DecodePolicy {

  public static final String NAME = "test-pinned";

  private final String instance;

  private PinnedDecodePolicy(String instance) {
    this.instance = instance;
  }

  @Override
  public Optional<DecodeCandidate> choose(RoutingRequest request,
      List<DecodeCandidate> candidates) {
    return candidates.stream().filter(c -> c.target().instanceId().equals(instance)).findFirst();
  }

  /** Found by {@link java.util.ServiceLoader}. */
  public static final class Factory implements DecodePolicyFactory {

    @Override
    public String name() {
      return NAME;
    }

    @Override
    public DecodePolicy create(JsonObject params) {
      String instance = params.getString("instance");
      if (instance == null) {
        throw new IllegalArgumentException(NAME + " needs the parameter 'instance'");
      }
      return new PinnedDecodePolicy(instance);
    }
  }
}
