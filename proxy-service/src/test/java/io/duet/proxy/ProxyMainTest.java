package io.duet.proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.duet.cluster.DuetConfig;
import io.duet.contract.InstanceInfo;
import io.duet.proxy.routing.DecodeTarget;
import io.duet.proxy.routing.Entries;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingRequest;
import io.duet.proxy.testpolicy.PinnedDecodePolicy;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ProxyMainTest {

  @Test
  void httpServersAreOnePerCoreUnlessConfigured() {
    DuetConfig defaults = DuetConfig.defaults();
    assertEquals(Runtime.getRuntime().availableProcessors(),
        ProxyMain.options(defaults).getInstances());
    assertEquals(3, ProxyMain.options(defaults.with("proxy.http-instances", 3)).getInstances());
    assertThrows(IllegalArgumentException.class,
        () -> defaults.with("proxy.http-instances", -1));
  }

  @Test
  void routingPoliciesAndTheirParametersComeFromTheConfiguration() {
    DuetConfig pinned = DuetConfig.defaults().with("proxy.decode-policy", PinnedDecodePolicy.NAME)
        .with("proxy.decode-policy-params", new JsonObject().put("instance", "d1"));
    Routing routing = ProxyMain.routing(pinned, new SimpleMeterRegistry());
    List<InstanceInfo> idle = List.of(Entries.decode("d0", 8, 0, 0), Entries.decode("d1", 8, 0, 0));
    assertEquals(Optional.of(new DecodeTarget("d1", 0)), routing.chooseDecode(idle,
        new RoutingRequest("r1", Entries.MODEL, 10), Entries.FINGERPRINT, Set.of()));
  }

  @Test
  void aMisnamedPolicyOrAParameterItDoesNotTakeFailsTheStartSayingWhy() {
    DuetConfig defaults = DuetConfig.defaults();
    SimpleMeterRegistry metrics = new SimpleMeterRegistry();
    IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
        () -> ProxyMain.routing(defaults.with("proxy.decode-policy", "round-robin"), metrics));
    assertEquals("unknown decode routing policy 'round-robin'; known decode policies: "
        + "least-load, test-pinned", unknown.getMessage());
    IllegalArgumentException parameter = assertThrows(IllegalArgumentException.class,
        () -> ProxyMain.routing(defaults.with("proxy.prefill-policy-params.weight", 2), metrics));
    assertEquals("routing policy least-prompt-tokens takes no parameters, got {\"weight\":2}",
        parameter.getMessage());
  }
}
