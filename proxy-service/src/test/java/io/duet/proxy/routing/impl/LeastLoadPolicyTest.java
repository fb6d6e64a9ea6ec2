package io.duet.proxy.routing.impl;

import static io.duet.proxy.routing.Entries.candidate;
import static io.duet.proxy.routing.Entries.decode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.duet.proxy.routing.DecodeCandidate;
import io.duet.proxy.routing.DecodePolicy;
import io.duet.proxy.routing.Entries;
import io.duet.proxy.routing.RoutingRequest;
import io.vertx.core.json.JsonObject;
import java.util.List;
import org.junit.jupiter.api.Test;

class LeastLoadPolicyTest {

  private final DecodePolicy policy = new LeastLoadPolicy.Factory().create(new JsonObject());
  private final RoutingRequest request = Entries.request("r1", 10, 16);

  private String chosen(DecodeCandidate... candidates) {
    return policy.choose(request, List.of(candidates)).orElseThrow().target().instanceId();
  }

  @Test
  void countsRunningAndWaitingRequests() {
    assertEquals("d1", chosen(candidate(decode("d0", 8, 1, 2), 0),
        candidate(decode("d1", 8, 2, 0), 0)));
  }

  @Test
  void loadIsRelativeToCapacity() {
    // 4 of 8 against 8 of 32: the bigger instance is the less loaded
    assertEquals("d1", chosen(candidate(decode("d0", 8, 4, 0), 0),
        candidate(decode("d1", 32, 8, 0), 0)));
  }

  @Test
  void addsTheRequestsThisProxyHasInFlight() {
    assertEquals("d1", chosen(candidate(decode("d0", 8, 0, 0), 2),
        candidate(decode("d1", 8, 1, 0), 0)));
    assertEquals("d0", chosen(candidate(decode("d0", 8, 0, 0), 1),
        candidate(decode("d1", 8, 1, 0), 1)));
  }

  @Test
  void tiesGoToTheFirstCandidate() {
    assertEquals("d1", chosen(candidate(decode("d1", 8, 1, 0), 0),
        candidate(decode("d0", 8, 0, 0), 1)));
  }

  @Test
  void aCapacityOfZeroCountsAsOne() {
    assertEquals("d1", chosen(candidate(decode("d0", 0, 2, 0), 0),
        candidate(decode("d1", 0, 1, 0), 0)));
  }

  @Test
  void takesNoParameters() {
    assertThrows(IllegalArgumentException.class,
        () -> new LeastLoadPolicy.Factory().create(new JsonObject().put("cap", 25)));
  }
}
