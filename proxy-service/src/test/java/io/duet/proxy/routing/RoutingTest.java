package io.duet.proxy.routing;

import static io.duet.proxy.routing.Entries.FINGERPRINT;
import static io.duet.proxy.routing.Entries.MODEL;
import static io.duet.proxy.routing.Entries.decode;
import static io.duet.proxy.routing.Entries.prefill;
import static io.duet.proxy.routing.Entries.request;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.InstanceInfo;
import io.duet.proxy.routing.DecodeClaim.Outcome;
import io.duet.proxy.routing.impl.LongestFirstPolicy;
import io.duet.proxy.testpolicy.PinnedDecodePolicy;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.distribution.CountAtBucket;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class RoutingTest {

  private static final RoutingRequest REQUEST = request("r1", 10, 16);
  private static final DecodeTarget D0 = new DecodeTarget("d0", 0);
  private static final DecodeTarget D1 = new DecodeTarget("d1", 0);

  private final SimpleMeterRegistry metrics = new SimpleMeterRegistry();
  private final Routing routing = Routing.create(new RoutingOptions(), metrics);
  private final List<InstanceInfo> idlePair = List.of(decode("d0", 8, 0, 0),
      decode("d1", 8, 0, 0));
  private final List<InstanceInfo> one = List.of(decode("d0", 8, 0, 0));
  /** The requests whose waiting claims got a slot, and where, in the order they got it. */
  private final Map<String, DecodeTarget> granted = new ConcurrentHashMap<>();
  private final List<String> grantOrder = new CopyOnWriteArrayList<>();

  private DecodeClaim claim(List<InstanceInfo> instances, RoutingRequest request,
      Set<DecodeTarget> refused) {
    return routing.claimDecode(instances, request, FINGERPRINT, refused, target -> {
      granted.put(request.requestId(), target);
      grantOrder.add(request.requestId());
    });
  }

  /** The target a claim placed the request on at once; empty for any other outcome. */
  private Optional<DecodeTarget> placed(List<InstanceInfo> instances, RoutingRequest request) {
    DecodeClaim claim = claim(instances, request, Set.of());
    return claim.outcome() == Outcome.PLACED ? Optional.of(claim.target()) : Optional.empty();
  }

  /** Caps the targets at 1 request (and the queue at 10), then fills d0 with one it returns. */
  private RoutingRequest fillTheOnlyTarget() {
    routing.reconfigure(capped(1, 10));
    RoutingRequest holder = request("holder", 10, 16);
    assertEquals(Outcome.PLACED, claim(one, holder, Set.of()).outcome());
    return holder;
  }

  private static RoutingOptions capped(int cap, int queueSize) {
    return new RoutingOptions().setDecodeRankCap(cap).setQueueSize(queueSize);
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
    assertEquals(Optional.empty(), routing.choosePrefill(registry,
        RoutingRequest.ofText("r2", "nobody's", "hello", 16), Set.of()));
  }

  @Test
  void theInFlightSeriesOfAnInstanceGoWhenItLeavesAndComeBackWithIt() {
    InstanceInfo p0 = prefill("p0", MODEL, 0);
    InstanceInfo d0 = decode("d0", 8, 0, 0);
    prefillFor(List.of(p0), Set.of());
    placed(List.of(d0), REQUEST);
    assertEquals(1, metrics.find("duet.routing.prefill.tokens.in.flight").gauges().size());
    assertEquals(1, metrics.find("duet.routing.decode.in.flight").gauges().size());

    routing.instanceLeft(p0);
    routing.instanceLeft(d0);
    assertEquals(0, metrics.find("duet.routing.prefill.tokens.in.flight").gauges().size());
    assertEquals(0, metrics.find("duet.routing.decode.in.flight").gauges().size());

    prefillFor(List.of(p0), Set.of());
    assertEquals(1, metrics.find("duet.routing.prefill.tokens.in.flight")
        .tag("prefill_instance", "p0").gauges().size(), "p0 came back");
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
    assertEquals(Optional.of(new DecodeTarget("d2", 0)), placed(registry, REQUEST));
  }

  @Test
  void decodeCandidatesServeTheModelWithTheKvLayoutAndHaveNotRefusedTheRequest() {
    InstanceInfo busy = decode("e-busy", 8, 7, 0);
    List<InstanceInfo> registry = List.of(prefill("a-prefill", MODEL, 0),
        decode("b-other-layout", MODEL, "kv-b", 8, 0, 0),
        decode("c-other-model", "other", FINGERPRINT, 8, 0, 0), decode("d-refused", 8, 0, 0),
        busy);
    Set<DecodeTarget> refused = Set.of(new DecodeTarget("d-refused", 0));
    assertEquals(DecodeTarget.of(busy), claim(registry, REQUEST, refused).target());
    assertEquals(Outcome.NO_TARGET, claim(registry, REQUEST, Set.of(DecodeTarget.of(busy),
        new DecodeTarget("d-refused", 0))).outcome());
  }

  @Test
  void aPolicyNeverSeesAnIncompatibleInstance() {
    routing.reconfigure(pinnedTo("b-other-layout"));
    assertEquals(Outcome.NO_TARGET, claim(List.of(decode("b-other-layout", MODEL, "kv-b", 8, 0,
        0), decode("d0", 8, 0, 0)), REQUEST, Set.of()).outcome());
  }

  @Test
  void theProxysOwnInFlightCountsChangeTheChoice() {
    RoutingRequest first = request("first", 10, 16);
    assertEquals(Optional.of(D0), placed(idlePair, first));
    assertEquals(Optional.of(D1), placed(idlePair, request("second", 10, 16)));
    assertEquals(1, routing.inFlight().requests(D0));
    assertEquals(26, routing.inFlight().tokens(D0), "prompt and max_tokens");
    routing.releaseDecode(idlePair, D0, first);
    assertEquals(0, routing.inFlight().requests(D0));
    assertEquals(Optional.of(D0), placed(idlePair, request("third", 10, 16)));

    List<InstanceInfo> prefills = List.of(prefill("p0", MODEL, 0), prefill("p1", MODEL, 0));
    routing.inFlight().prefillStarted("p0", 40);
    assertEquals("p1", prefillFor(prefills, Set.of()).orElseThrow().instanceId());
  }

  @Test
  void policiesReplacedAtRunTimeKeepTheCounts() {
    assertEquals(Optional.of(D0), placed(idlePair, request("a", 10, 16)));

    routing.reconfigure(pinnedTo("d0"));
    assertEquals(Optional.of(D0), placed(idlePair, request("b", 10, 16)),
        "the new policy chooses");
    assertEquals(2, routing.inFlight().requests(D0));

    routing.reconfigure(new RoutingOptions());
    assertEquals(Optional.of(D1), placed(idlePair, request("c", 10, 16)),
        "least-load again, still counting d0's requests");
  }

  @Test
  void aBadReconfigurationLeavesEverythingAsItWas() {
    routing.reconfigure(pinnedTo("d1").setDecodeRankCap(1));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> routing.reconfigure(new RoutingOptions().setPrefillPolicy("shortest-queue")));
    assertEquals("unknown prefill routing policy 'shortest-queue'; known prefill policies: "
        + "least-prompt-tokens, prefix-affinity, round-robin", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> routing.reconfigure(
        new RoutingOptions().setDecodePolicyParams(new JsonObject().put("x", 1))));
    assertEquals(Optional.of(D1), placed(idlePair, REQUEST), "still pinned to d1");
    assertEquals(Outcome.WAITING, claim(idlePair, request("r2", 10, 16), Set.of()).outcome(),
        "still capped at 1");
  }

  @Test
  void decisionsAreCountedByKindAndPolicy() {
    prefillFor(List.of(prefill("p0", MODEL, 0)), Set.of());
    placed(idlePair, request("a", 10, 16));
    placed(idlePair, request("b", 10, 16));
    routing.reconfigure(pinnedTo("d1"));
    placed(idlePair, request("c", 10, 16));
    placed(List.of(decode("d0", 8, 0, 0)), request("d", 10, 16));
    placed(List.of(), request("e", 10, 16));

    assertEquals(1, decisions("prefill", "least-prompt-tokens"));
    assertEquals(2, decisions("decode", "least-load"));
    assertEquals(1, decisions("decode", "test-pinned"), "refusals and no candidates count not");
  }

  @Test
  void anUnknownPolicyNameFailsTheCreationListingTheKnownNames() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Routing.create(new RoutingOptions().setDecodePolicy("random"), metrics));
    assertTrue(e.getMessage().contains("known decode policies: least-load, longest-first, "
        + "test-pinned"), e.getMessage());
  }

  @Test
  void noTargetTakesMoreThanTheCapAndTheNextRequestWaitsForAFreedSlot() {
    routing.reconfigure(capped(2, 10));
    List<RoutingRequest> running = new ArrayList<>();
    List<DecodeTarget> targets = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      running.add(request("r" + i, 10, 16));
      targets.add(placed(idlePair, running.get(i)).orElseThrow());
    }
    assertEquals(List.of(D0, D1, D0, D1), targets);

    assertEquals(Outcome.WAITING, claim(idlePair, request("waits", 10, 16), Set.of())
        .outcome());
    assertEquals(1, routing.waiting());
    assertEquals(1.0, metrics.get("duet.routing.queue.length").gauge().value());
    assertTrue(granted.isEmpty());

    routing.releaseDecode(idlePair, D1, running.get(1));
    assertEquals(Map.of("waits", D1), granted);
    assertEquals(2, routing.inFlight().requests(D1), "the slot went to the waiting request");
    assertEquals(0, routing.waiting());

    // The targets' loads at the 5 placements, each counting its own request: 1, 1, 2, 2, 2.
    DistributionSummary loads = metrics.get("duet.routing.decode.load.at.placement").summary();
    assertEquals(5, loads.count());
    assertEquals(8, loads.totalAmount());
    Map<Double, Double> atMost = new HashMap<>();
    for (CountAtBucket bucket : loads.takeSnapshot().histogramCounts()) {
      atMost.put(bucket.bucket(), bucket.count());
    }
    assertEquals(2.0, atMost.get(1.0));
    assertEquals(5.0, atMost.get(2.0));
  }

  @Test
  void aFullQueueRefusesAndTheDoorSaysSoWhileNoTargetHasRoom() {
    routing.reconfigure(capped(1, 1));
    assertFalse(routing.queueFull(one, MODEL));
    assertEquals(Outcome.PLACED, claim(one, request("a", 10, 16), Set.of()).outcome());
    assertEquals(Outcome.WAITING, claim(one, request("b", 10, 16), Set.of()).outcome());
    assertTrue(routing.queueFull(one, MODEL));
    assertFalse(routing.queueFull(idlePair, MODEL), "d1 has room");
    assertEquals(Outcome.QUEUE_FULL, claim(one, request("c", 10, 16), Set.of()).outcome());

    routing.reconfigure(capped(1, 0));
    assertFalse(routing.queueFull(List.of(decode("d9", 8, 0, 0)), MODEL),
        "an empty queue of size 0 lets a request through while a target has room");
  }

  @Test
  void aWithdrawnRequestGetsNoSlotAndOneThatGotItsSlotCannotWithdraw() {
    RoutingRequest holder = fillTheOnlyTarget();
    DecodeClaim withdrawn = claim(one, request("withdrawn", 10, 16), Set.of());
    DecodeClaim next = claim(one, request("next", 10, 16), Set.of());

    assertTrue(withdrawn.withdraw());
    routing.releaseDecode(one, D0, holder);
    assertEquals(Map.of("next", D0), granted);
    assertFalse(next.withdraw(), "it has its slot");
    assertFalse(withdrawn.withdraw(), "it was withdrawn already");
  }

  @Test
  void aWaitingRequestGetsNoSlotOnATargetThatRefusedIt() {
    routing.reconfigure(capped(1, 10));
    RoutingRequest onD0 = request("on-d0", 10, 16);
    RoutingRequest onD1 = request("on-d1", 10, 16);
    claim(idlePair, onD0, Set.of());
    claim(idlePair, onD1, Set.of());
    assertEquals(Outcome.WAITING, claim(idlePair, request("refused-by-d0", 10, 16), Set.of(D0))
        .outcome());

    routing.releaseDecode(idlePair, D0, onD0);
    assertTrue(granted.isEmpty());
    routing.releaseDecode(idlePair, D1, onD1);
    assertEquals(Map.of("refused-by-d0", D1), granted);
  }

  @Test
  void waitingRequestsAreServedFirstComeFirstServedOrInTheOrderOfTheDecodePolicy() {
    RoutingRequest holder = fillTheOnlyTarget();
    for (String id : List.of("small", "large", "medium")) {
      int size = Map.of("small", 10, "large", 100, "medium", 50).get(id);
      assertEquals(Outcome.WAITING, claim(one, request(id, size, 16), Set.of()).outcome());
    }
    routing.releaseDecode(one, D0, holder);
    assertEquals(List.of("small"), grantOrder, "first come, first served");

    routing.reconfigure(capped(1, 10).setDecodePolicy(LongestFirstPolicy.NAME));
    routing.releaseDecode(one, D0, request("small", 10, 16));
    routing.releaseDecode(one, D0, request("large", 100, 16));
    assertEquals(List.of("small", "large", "medium"), grantOrder,
        "the queue is reordered by the new policy: the largest first");
  }

  @Test
  void aRaisedCapGivesTheSlotsItOpensToTheWaitingRequestsAndALoweredOneKeepsThoseInFlight() {
    RoutingRequest first = fillTheOnlyTarget();
    claim(one, request("w1", 10, 16), Set.of());
    claim(one, request("w2", 10, 16), Set.of());

    routing.reconfigure(capped(3, 10));
    routing.dispatchWaiting(one);
    assertEquals(List.of("w1", "w2"), grantOrder);
    assertEquals(3, routing.inFlight().requests(D0));

    routing.reconfigure(capped(1, 10));
    assertEquals(3, routing.inFlight().requests(D0), "no request in flight is dropped");
    assertEquals(Outcome.WAITING, claim(one, request("w3", 10, 16), Set.of()).outcome());
    routing.releaseDecode(one, D0, first);
    assertEquals(List.of("w1", "w2"), grantOrder, "2 of this proxy's requests are still above 1");
  }

  @Test
  void aPolicyThatRefusesTheTargetsBelowTheCapMakesTheRequestWaitForItsTarget() {
    routing.reconfigure(pinnedTo("d1").setDecodeRankCap(1));
    RoutingRequest onD1 = request("on-d1", 10, 16);
    assertEquals(Optional.of(D1), placed(idlePair, onD1));
    assertEquals(Outcome.WAITING, claim(idlePair, request("for-d1", 10, 16), Set.of())
        .outcome(), "d0 has room, but the policy wants d1");
    routing.releaseDecode(idlePair, D1, onD1);
    assertEquals(Map.of("for-d1", D1), granted);
  }

  @Test
  void eventLoopsClaimingAtOnceNeverPutMoreThanTheCapOnATarget() throws Exception {
    int cap = 2;
    routing.reconfigure(capped(cap, 1024));
    int threads = 4;
    int perThread = 2_000;
    AtomicBoolean done = new AtomicBoolean();
    AtomicInteger most = new AtomicInteger();
    ExecutorService pool = Executors.newFixedThreadPool(threads + 1);
    try {
      Future<?> sampler = pool.submit(() -> {
        while (!done.get()) {
          most.accumulateAndGet(Math.max(routing.inFlight().requests(D0),
              routing.inFlight().requests(D1)), Math::max);
        }
      });
      List<Future<?>> runs = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int thread = t;
        runs.add(pool.submit(() -> {
          for (int i = 0; i < perThread; i++) {
            RoutingRequest request = request(thread + "-" + i, 10, 16);
            CompletableFuture<DecodeTarget> slot = new CompletableFuture<>();
            DecodeClaim claim = routing.claimDecode(idlePair, request, FINGERPRINT, Set.of(),
                slot::complete);
            DecodeTarget target = claim.outcome() == Outcome.PLACED ? claim.target()
                : slot.get(10, TimeUnit.SECONDS);
            most.accumulateAndGet(routing.inFlight().requests(target), Math::max);
            routing.releaseDecode(idlePair, target, request);
          }
          return null;
        }));
      }
      for (Future<?> run : runs) {
        run.get(60, TimeUnit.SECONDS);
      }
      done.set(true);
      sampler.get(10, TimeUnit.SECONDS);
    } finally {
      pool.shutdownNow();
    }
    assertTrue(most.get() <= cap, "a target held " + most.get());
    assertEquals(0, routing.inFlight().requests(D0) + routing.inFlight().requests(D1));
    assertEquals(0, routing.waiting());
  }
}
