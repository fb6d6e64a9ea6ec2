package io.duet.proxy.routing.impl;

import static io.duet.proxy.routing.Entries.MODEL;
import static io.duet.proxy.routing.Entries.prefill;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.duet.proxy.routing.Entries;
import io.duet.proxy.routing.PrefillCandidate;
import io.duet.proxy.routing.PrefillPolicy;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class RoundRobinPolicyTest {

  private final PrefillPolicy policy = new RoundRobinPolicy.Factory().create(new JsonObject());

  private List<String> choices(int n, List<PrefillCandidate> candidates) {
    List<String> chosen = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      chosen.add(policy.choose(Entries.request("r" + i, 10, 16), candidates).orElseThrow()
          .entry().instanceId());
    }
    return chosen;
  }

  @Test
  void takesTheInstancesInTurnWhateverTheirLoad() {
    List<PrefillCandidate> three = List.of(new PrefillCandidate(prefill("p0", MODEL, 900), 0),
        new PrefillCandidate(prefill("p1", MODEL, 0), 0),
        new PrefillCandidate(prefill("p2", MODEL, 0), 500));
    assertEquals(List.of("p0", "p1", "p2", "p0", "p1", "p2", "p0"), choices(7, three));
  }

  @Test
  void carriesOnOverTheInstancesThereAreNow() {
    List<PrefillCandidate> two = List.of(new PrefillCandidate(prefill("p0", MODEL, 0), 0),
        new PrefillCandidate(prefill("p1", MODEL, 0), 0));
    assertEquals(List.of("p0", "p1", "p0"), choices(3, two));
    assertEquals(List.of("p0"), choices(1, two.subList(0, 1)));
    assertEquals(List.of("p0", "p1"), choices(2, two));
  }

  @Test
  void takesNoParameters() {
    assertThrows(IllegalArgumentException.class,
        () -> new RoundRobinPolicy.Factory().create(new JsonObject().put("start", 1)));
  }
}
