package io.duet.proxy.routing.impl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.proxy.routing.DecodePolicy;
import io.duet.proxy.routing.DecodePolicyFactory;
import io.duet.proxy.routing.PrefillPolicy;
import io.duet.proxy.routing.PrefillPolicyFactory;
import io.duet.proxy.testpolicy.PinnedDecodePolicy;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PolicyCatalogTest {

  private final PolicyCatalog<DecodePolicy> decode =
      PolicyCatalog.load("decode", DecodePolicyFactory.class);
  private final SimpleMeterRegistry metrics = new SimpleMeterRegistry();

  @Test
  void findsThePoliciesRegisteredInTheProxyAndInTestCode() {
    assertEquals(Set.of("least-prompt-tokens", "prefix-affinity", "round-robin"),
        PolicyCatalog.<PrefillPolicy>load("prefill", PrefillPolicyFactory.class).names());
    assertEquals(Set.of("least-load", "longest-first", "test-pinned"), decode.names());
  }

  @Test
  void createsAPolicyByNameWithItsParameters() {
    assertInstanceOf(LeastLoadPolicy.class,
        decode.create("least-load", new JsonObject(), metrics));
    assertInstanceOf(PinnedDecodePolicy.class,
        decode.create("test-pinned", new JsonObject().put("instance", "d1"), metrics));
    IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
        () -> decode.create("test-pinned", new JsonObject(), metrics));
    assertEquals("test-pinned needs the parameter 'instance'", missing.getMessage());
  }

  @Test
  void anUnknownNameFailsListingTheKnownOnes() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> decode.create("round-robin", new JsonObject(), metrics));
    assertEquals("unknown decode routing policy 'round-robin'; known decode policies: "
        + "least-load, longest-first, test-pinned", e.getMessage());
  }

  @Test
  void twoPoliciesOfOneNameAreRefused() {
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> new PolicyCatalog<>("decode",
            List.of(new LeastLoadPolicy.Factory(), new LeastLoadPolicy.Factory())));
    assertTrue(e.getMessage().startsWith("two decode routing policies are named 'least-load'"),
        e.getMessage());
  }
}
