package io.duet.proxy.routing;

import static io.duet.proxy.routing.Entries.FINGERPRINT;
import static io.duet.proxy.routing.Entries.MODEL;
import static io.duet.proxy.routing.Entries.decode;
import static io.duet.proxy.routing.Entries.prefill;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.InstanceInfo;
import io.duet.proxy.testpolicy.PinnedDecodePolicy;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RoutingTest {

  private static final RoutingRequest REQUEST = new RoutingRequest("r1", MODEL, 10);
  private static final DecodeTarget D0 = new DecodeTarget("d0", 0);
  private static final DecodeTarget D1 = new DecodeTarget("d1", 0);

  private final SimpleMeterRegistry metrics = new SimpleMeterRegistry();
  private final Routing routing = Routing.create(new RoutingOptions(), metrics);
  private final List<InstanceInfo> idlePair = List.of(decode("d0", 8, 0, 0),
      decode("d1", 8, 0, 0));

  private Optional<DecodeTarget> decodeFor(List<InstanceInfo> instances,
      Set<DecodeTarget> excluded) {
    return routing.chooseDecode(instances, REQUEST, FINGERPRINT, excluded);
  }

  private static RoutingOptions pinnedTo(String instance) {
    return new RoutingOptions().setDecodePolicy(PinnedDecodePolicy.NAME)
        .setDecodePolicyParams(new JsonObject().put("instance", instance));
  }

  private double decisions(String kind, String policy) {
    return metrics.get("duet.routing.decisions").tag("kind", kind).tag("policy", policy)
        .counter().count();
  }

  private Optional<InstanceInfo> prefillFor(List<InstanceInfo> instances, Set<String> excluded) {
    return routing.choosePrefill(instances, REQUEST, excluded);
  }

  @Test
  void prefillCandidatesArePrefillInstancesOfTheRequestsModelThatHaveNotRefusedIt() {
    List<InstanceInfo> registry = List.of(decode("a-decode", 8, 0, 0),
        prefill("b-other-model", "other", 0), prefill("c-refused", MODEL, 0),
        prefill("d-busy", MODEL, 500));
    assertEquals("d-busy", prefillFor(registry, Set.of("c-refused")).orElseThrow().instanceId());
    assertEquals(Optional.empty(), prefillFor(registry, Set.of("c-refused", "d-busy")));
    assertEquals(Optional.empty(),
        routing.choosePrefill(registry, new RoutingRequest("r2", "nobody's", 10), Set.of()));
  }

  @Test
  void aDrainingOrLeavingInstanceIsNoCandidate() {
    List<InstanceInfo> registry = List.of(
        prefill("p0", MODEL, 0).withState(InstanceInfo.State.DRAINING),
        prefill("p1", MODEL, 500),
        decode("d0", 8, 0, 0).withState(InstanceInfo.State.DRAINING),
        decode("d1", 8, 7, 0).withState(InstanceInfo.State.LEFT),
        decode("d2", 8, 7, 0));
    assertEquals("p1", prefillFor(registry, Set.of()).orElseThrow().instanceId());
    assertEquals(Optional.of(new DecodeTarget("d2", 0)), decodeFor(registry, Set.of()));
  }

  @Test
  void decodeCandidatesServeTheModelWithTheKvLayoutAndHaveNotRefusedTheRequest() {
    InstanceInfo busy = decode("e-busy", 8, 7, 0);
    List<InstanceInfo> registry = List.of(prefill("a-prefill", MODEL, 0),
        decode("b-other-layout", MODEL, "kv-b", 8, 0, 0),
        decode("c-other-model", "other", FINGERPRINT, 8, 0, 0), decode("d-refused", 8, 0, 0),
        busy);
    Set<DecodeTarget> refused = Set.of(new DecodeTarget("d-refused", 0));
    assertEquals(Optional.of(DecodeTarget.of(busy)), decodeFor(registry, refused));
    assertEquals(Optional.empty(), decodeFor(registry, Set.of(DecodeTarget.of(busy),
        new DecodeTarget("d-refused", 0))));
  }

  @Test
  void aPolicyNeverSeesAnIncompatibleInstance() {
    routing.reconfigure(pinnedTo("b-other-layout"));
    assertEquals(Optional.empty(), decodeFor(List.of(
        decode("b-other-layout", MODEL, "kv-b", 8, 0, 0), decode("d0", 8, 0, 0)), Set.of()));
  }

  @Test
  void theProxysOwnInFlightCountsChangeTheChoice() {
    assertEquals(Optional.of(D0), decodeFor(idlePair, Set.of()));
    routing.inFlight().decodeStarted(D0);
    assertEquals(Optional.of(D1), decodeFor(idlePair, Set.of()));
    routing.inFlight().decodeEnded(D0);
    assertEquals(Optional.of(D0), decodeFor(idlePair, Set.of()));

    List<InstanceInfo> prefills = List.of(prefill("p0", MODEL, 0), prefill("p1", MODEL, 0));
    routing.inFlight().prefillStarted("p0", 40);
    assertEquals("p1", prefillFor(prefills, Set.of()).orElseThrow().instanceId());
  }

  @Test
  void policiesReplacedAtRunTimeKeepTheCounts() {
    routing.inFlight().decodeStarted(D0);
    assertEquals(Optional.of(D1), decodeFor(idlePair, Set.of()));

    routing.reconfigure(pinnedTo("d0"));
    assertEquals(Optional.of(D0), decodeFor(idlePair, Set.of()), "the new policy chooses");
    assertEquals(1, routing.inFlight().requests(D0));

    routing.reconfigure(new RoutingOptions());
    assertEquals(Optional.of(D1), decodeFor(idlePair, Set.of()),
        "least-load again, still counting d0's request");
  }

  @Test
  void aBadReconfigurationLeavesThePoliciesAsTheyWere() {
    routing.reconfigure(pinnedTo("d1"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> routing.reconfigure(new RoutingOptions().setPrefillPolicy("shortest-queue")));
    assertEquals("unknown prefill routing policy 'shortest-queue'; known prefill policies: "
        + "least-prompt-tokens", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> routing.reconfigure(
        new RoutingOptions().setDecodePolicyParams(new JsonObject().put("x", 1))));
    assertEquals(Optional.of(D1), decodeFor(idlePair, Set.of()));
  }

  @Test
  void decisionsAreCountedByKindAndPolicy() {
    prefillFor(List.of(prefill("p0", MODEL, 0)), Set.of());
    decodeFor(idlePair, Set.of());
    decodeFor(idlePair, Set.of());
    routing.reconfigure(pinnedTo("d1"));
    decodeFor(idlePair, Set.of());
    decodeFor(List.of(decode("d0", 8, 0, 0)), Set.of());
    decodeFor(List.of(), Set.of());

    assertEquals(1, decisions("prefill", "least-prompt-tokens"));
    assertEquals(2, decisions("decode", "least-load"));
    assertEquals(1, decisions("decode", "test-pinned"), "refusals and no candidates count not");
  }

  @Test
  void anUnknownPolicyNameFailsTheCreationListingTheKnownNames() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Routing.create(new RoutingOptions().setDecodePolicy("random"), metrics));
    assertTrue(e.getMessage().contains("known decode policies: least-load, test-pinned"),
        e.getMessage());
  }
}
