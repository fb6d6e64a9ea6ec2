package io.duet.proxy.routing.impl;

import static io.duet.proxy.routing.Entries.candidate;
import static io.duet.proxy.routing.Entries.request;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.proxy.routing.DecodeCandidate;
import io.duet.proxy.routing.DecodePolicy;
import io.duet.proxy.routing.Entries;
import io.duet.proxy.routing.RoutingRequest;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class LongestFirstPolicyTest {

  private final DecodePolicy policy = new LongestFirstPolicy.Factory().create(new JsonObject());

  /** A decode rank whose heartbeat holds {@code tokens} in KV, with {@code running} requests. */
  private static InstanceInfo rank(String id, int running, long tokens) {
    return new InstanceInfo(id, Role.DECODE, 0, 1, "127.0.0.1", 1, 0, Entries.MODEL,
        Entries.FINGERPRINT, "plain", 8, new InstanceInfo.Load(running, 0, tokens, 0, 0), 0);
  }

  private String chosen(DecodeCandidate... candidates) {
    return policy.choose(request("r", 10, 16), List.of(candidates)).orElseThrow().target()
        .instanceId();
  }

  @Test
  void choosesTheTargetWithTheFewestTokensInFlightNotTheFewestRequests() {
    assertEquals("d1", chosen(candidate(rank("d0", 1, 3000), 0),
        candidate(rank("d1", 5, 500), 0)));
  }

  @Test
  void addsTheTokensOfThisProxysRequestsToTheHeartbeat() {
    assertEquals("d0", chosen(candidate(rank("d0", 0, 1000), 1, 200),
        candidate(rank("d1", 0, 0), 4, 1500)));
  }

  @Test
  void tiesGoToTheFirstCandidate() {
    assertEquals("d1", chosen(candidate(rank("d1", 0, 100), 0),
        candidate(rank("d0", 0, 0), 1, 100)));
  }

  @Test
  void theWaitingRequestWithTheMostPromptAndMaxTokensGoesFirst() {
    List<RoutingRequest> waiting = new ArrayList<>(List.of(request("short", 100, 16),
        request("long-prompt", 900, 16), request("long-answer", 10, 2000),
        request("medium", 200, 200)));
    waiting.sort(policy.waitingOrder());
    assertEquals(List.of("long-answer", "long-prompt", "medium", "short"),
        waiting.stream().map(RoutingRequest::requestId).toList());
  }

  @Test
  void takesNoParameters() {
    assertThrows(IllegalArgumentException.class,
        () -> new LongestFirstPolicy.Factory().create(new JsonObject().put("cap", 2)));
  }
}
