package io.duet.proxy.routing;

import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.proxy.routing.impl.PolicyCatalog;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Chooses the instances of each request with the current routing policies, and holds this
 * proxy's requests to a cap per decode target. The proxy decides which instances are compatible
 * with a request (they are serving, not draining, serve its model and have not refused it; a
 * decode target also has the KV layout of the request's prefill instance); the policy chooses
 * among them, seeing the proxy's own {@link #inFlight() in-flight counts} in the candidates.
 *
 * <p>Decode targets take at most {@link RoutingOptions#getDecodeRankCap()} of this proxy's
 * requests each. A request that finds every compatible target at the cap waits in the proxy's
 * queue (at most {@link RoutingOptions#getQueueSize()} requests, in the order the decode policy
 * sets) and gets the next slot it may use; see {@link #claimDecode}.
 *
 * <p>Policies are found by name among the factories registered with {@link
 * java.util.ServiceLoader} ({@link PrefillPolicyFactory}, {@link DecodePolicyFactory}). They, the
 * cap and the queue bound can be replaced at run time ({@link #reconfigure}); the in-flight counts
 * and the waiting requests stay.
 *
 * <p>Metrics: every decision in {@code duet_routing_decisions_total{kind,policy}}, kind
 * {@code prefill} or {@code decode}; this proxy's prompt tokens in flight per prefill instance
 * ({@code duet_routing_prefill_tokens_in_flight{prefill_instance}}) and requests per decode
 * target ({@code duet_routing_decode_in_flight{decode_instance,rank}}); how loaded the decode
 * target a request was placed on was, the request included
 * ({@code duet_routing_decode_load_at_placement}, a histogram); the queue's length
 * ({@code duet_routing_queue_length}) and wait ({@code duet_routing_queue_wait_seconds}). One
 * {@code Routing} serves every event loop of a proxy; it is thread-safe.
 */
public final class Routing {

  private static final Logger LOG = LoggerFactory.getLogger(Routing.class);
  private static final String PREFILL = Role.PREFILL.wireName();
  private static final String DECODE = Role.DECODE.wireName();

  /** The policies in use, the counters of their decisions, the cap and the queue bound. */
  record Config(PrefillPolicy prefill, Counter prefillDecisions, DecodePolicy decode,
      Counter decodeDecisions, int decodeRankCap, int queueSize) {
  }

  private final PolicyCatalog<PrefillPolicy> prefillPolicies =
      PolicyCatalog.load(PREFILL, PrefillPolicyFactory.class);
  private final PolicyCatalog<DecodePolicy> decodePolicies =
      PolicyCatalog.load(DECODE, DecodePolicyFactory.class);
  private final MeterRegistry metrics;
  private final InFlightCounts inFlight = new InFlightCounts();
  /** The in-flight gauge of each prefill instance chosen since it joined. */
  private final Map<String, Gauge> prefillGauges = new ConcurrentHashMap<>();
  private final AtomicReference<Config> config = new AtomicReference<>();
  private final DecodeSlots decodeSlots;

  private Routing(RoutingOptions options, MeterRegistry metrics) {
    this.metrics = metrics;
    config.set(config(options));
    this.decodeSlots = new DecodeSlots(config::get, inFlight, metrics);
  }

  /**
   * Routing as {@code options} say.
   *
   * @param metrics where the decisions are counted
   * @throws IllegalArgumentException for an unknown policy (the message lists the known ones)
   *     or parameters a policy does not take
   */
  public static Routing create(RoutingOptions options, MeterRegistry metrics) {
    Routing routing = new Routing(options, metrics);
    LOG.info("routing: {}", options.toJson().encode());
    return routing;
  }

  /**
   * Routes as {@code options} say from now on. Both policies are made before anything is
   * replaced, so a bad name or parameter leaves everything as it was. Choices already running
   * finish with the policies they started with; requests in flight keep their slots even above
   * a lowered cap, waiting requests keep their place in a smaller queue and are ordered by the new
   * decode policy. Waiting requests get the slots a raised cap opens at the next
   * {@link #releaseDecode} or {@link #dispatchWaiting}.
   *
   * @throws IllegalArgumentException as {@link #create} does
   */
  public void reconfigure(RoutingOptions options) {
    config.set(config(options));
    decodeSlots.reorder();
    LOG.info("routing: {}", options.toJson().encode());
  }

  private Config config(RoutingOptions options) {
    return new Config(
        prefillPolicies.create(options.getPrefillPolicy(), options.getPrefillPolicyParams(),
            metrics),
        decisions(PREFILL, options.getPrefillPolicy()),
        decodePolicies.create(options.getDecodePolicy(), options.getDecodePolicyParams(),
            metrics),
        decisions(DECODE, options.getDecodePolicy()), options.getDecodeRankCap(),
        options.getQueueSize());
  }

  private Counter decisions(String kind, String policy) {
    return Counter.builder("duet.routing.decisions")
        .description("Instances chosen for requests, by routing policy")
        .tag("kind", kind).tag("policy", policy).register(metrics);
  }

  /** This proxy's in-flight counts; the caller keeps the prefill counts as it sends and ends work. */
  public InFlightCounts inFlight() {
    return inFlight;
  }

  /**
   * The prefill instance for a request, chosen among the serving instances that serve its
   * model, less {@code excluded}.
   *
   * @param instances the live registry
   * @param excluded ids of the instances that already refused or lost the request
   * @return empty when no instance serves the model or the policy refused them all
   */
  public Optional<InstanceInfo> choosePrefill(List<InstanceInfo> instances,
      RoutingRequest request, Set<String> excluded) {
    List<PrefillCandidate> candidates = new ArrayList<>();
    for (InstanceInfo entry : instances) {
      if (entry.role() == Role.PREFILL && entry.isServing()
          && entry.modelName().equals(request.model()) && !excluded.contains(entry.instanceId())) {
        candidates.add(new PrefillCandidate(entry, inFlight.promptTokens(entry.instanceId())));
      }
    }
    if (candidates.isEmpty()) {
      return Optional.empty();
    }
    Config current = config.get();
    Optional<InstanceInfo> choice = current.prefill().choose(request, List.copyOf(candidates))
        .map(PrefillCandidate::entry);
    choice.ifPresent(entry -> {
      current.prefillDecisions().increment();
      String id = entry.instanceId();
      prefillGauges.computeIfAbsent(id, absent -> Gauge.builder(
              "duet.routing.prefill.tokens.in.flight", inFlight, counts -> counts.promptTokens(id))
          .description("Prompt tokens this proxy has in flight on a prefill instance")
          .tag("prefill_instance", id).register(metrics));
    });
    return choice;
  }

  /**
   * Claims a decode slot for a prefilled request: a target that serves its model with the KV
   * layout {@code fingerprint}, has not refused it and holds fewer of this proxy's requests than
   * the cap, as the decode policy chooses. When every compatible target is at the cap the
   * request waits, unless the queue is full. Thread-safe.
   *
   * @param instances the live registry
   * @param refused targets that already refused the request
   * @param onSlot called with the target when a waiting request gets its slot, on the thread
   *     that freed it; it counts on the target from then on
   */
  public DecodeClaim claimDecode(List<InstanceInfo> instances, RoutingRequest request,
      String fingerprint, Set<DecodeTarget> refused, Consumer<DecodeTarget> onSlot) {
    return claimDecode(instances, request, fingerprint, Set.of(), refused, onSlot);
  }

  /**
   * {@link #claimDecode(List, RoutingRequest, String, Set, Consumer)} among the targets that
   * announce every one of {@code capabilities} ({@link InstanceInfo#capabilities}).
   */
  public DecodeClaim claimDecode(List<InstanceInfo> instances, RoutingRequest request,
      String fingerprint, Set<String> capabilities, Set<DecodeTarget> refused,
      Consumer<DecodeTarget> onSlot) {
    return decodeSlots.claim(instances, request, fingerprint, capabilities, refused, onSlot);
  }

  /**
   * Gives back the slot {@code request} held on {@code target} (it ended, or the target did not
   * take it), and gives the slots free in {@code instances} to waiting requests.
   */
  public void releaseDecode(List<InstanceInfo> instances, DecodeTarget target,
      RoutingRequest request) {
    decodeSlots.release(instances, target, request);
  }

  /**
   * Gives the slots free in {@code instances} to waiting requests: after a target joined or the
   * cap was raised, when no slot was given back.
   */
  public void dispatchWaiting(List<InstanceInfo> instances) {
    decodeSlots.dispatch(instances);
  }

  /**
   * Whether a new request for {@code model} would be refused for want of a decode slot: the
   * queue is full and no decode target of the model is below the cap. A front end refuses such a
   * request before it is prefilled.
   */
  public boolean queueFull(List<InstanceInfo> instances, String model) {
    return decodeSlots.full(instances, model);
  }

  /**
   * Forgets what the metrics show of an instance (or decode rank) that left the registry, so
   * that the series of instances long gone do not pile up; it gets them again if it comes back.
   */
  public void instanceLeft(InstanceInfo entry) {
    if (entry.role() == Role.PREFILL) {
      Gauge gauge = prefillGauges.remove(entry.instanceId());
      if (gauge != null) {
        metrics.remove(gauge);
      }
    } else if (entry.role() == Role.DECODE) {
      decodeSlots.targetLeft(DecodeTarget.of(entry));
    }
  }

  /** Requests waiting for a decode slot now. */
  public int waiting() {
    return decodeSlots.waiting();
  }
}
