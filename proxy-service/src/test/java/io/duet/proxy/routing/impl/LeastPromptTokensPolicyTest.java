package io.duet.proxy.routing.impl;

import static io.duet.proxy.routing.Entries.MODEL;
import static io.duet.proxy.routing.Entries.prefill;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.duet.proxy.routing.Entries;
import io.duet.proxy.routing.PrefillCandidate;
import io.duet.proxy.routing.PrefillPolicy;
import io.duet.proxy.routing.RoutingRequest;
import io.vertx.core.json.JsonObject;
import java.util.List;
import org.junit.jupiter.api.Test;

class LeastPromptTokensPolicyTest {

  private final PrefillPolicy policy = new LeastPromptTokensPolicy.Factory().create(new JsonObject());
  private final RoutingRequest request = Entries.request("r1", 10, 16);

  private String chosen(PrefillCandidate... candidates) {
    return policy.choose(request, List.of(candidates)).orElseThrow().entry().instanceId();
  }

  @Test
  void choosesTheInstanceWithTheFewestPromptTokensInItsHeartbeat() {
    assertEquals("p1", chosen(new PrefillCandidate(prefill("p0", MODEL, 100), 0),
        new PrefillCandidate(prefill("p1", MODEL, 20), 0),
        new PrefillCandidate(prefill("p2", MODEL, 50), 0)));
  }

  @Test
  void addsThePromptTokensThisProxySentSinceTheHeartbeat() {
    assertEquals("p0", chosen(new PrefillCandidate(prefill("p0", MODEL, 10), 0),
        new PrefillCandidate(prefill("p1", MODEL, 0), 30)));
    assertEquals("p1", chosen(new PrefillCandidate(prefill("p0", MODEL, 10), 0),
        new PrefillCandidate(prefill("p1", MODEL, 0), 5)));
  }

  @Test
  void tiesGoToTheFirstCandidate() {
    assertEquals("p1", chosen(new PrefillCandidate(prefill("p1", MODEL, 5), 0),
        new PrefillCandidate(prefill("p0", MODEL, 0), 5)));
  }

  @Test
  void takesNoParameters() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new LeastPromptTokensPolicy.Factory().create(new JsonObject().put("weight", 2)));
    assertEquals("routing policy least-prompt-tokens takes no parameters, got {\"weight\":2}",
        e.getMessage());
  }
}
