package io.duet.proxy.routing;

import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.proxy.routing.impl.PolicyCatalog;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Chooses the instances of each request with the current routing policies. The proxy decides
 * which instances are compatible with a request (they are serving, not draining, serve its
 * model and have not refused it; a decode target also has the KV layout of the request's
 * prefill instance); the policy chooses among them, seeing the proxy's own {@link #inFlight()
 * in-flight counts} in the candidates.
 *
 * <p>Policies are found by name among the factories registered with {@link
 * java.util.ServiceLoader} ({@link PrefillPolicyFactory}, {@link DecodePolicyFactory}). They can
 * be replaced at run time ({@link #reconfigure}); the in-flight counts stay, so the new policies
 * see the requests the old ones placed.
 *
 * <p>Every decision is counted in {@code duet_routing_decisions_total{kind,policy}}, kind
 * {@code prefill} or {@code decode}. One {@code Routing} serves every event loop of a proxy; it
 * is thread-safe.
 */
public final class Routing {

  private static final Logger LOG = LoggerFactory.getLogger(Routing.class);
  private static final String PREFILL = Role.PREFILL.wireName();
  private static final String DECODE = Role.DECODE.wireName();

  /** The policies in use and the counters of their decisions, replaced as one. */
  private record Policies(PrefillPolicy prefill, Counter prefillDecisions, DecodePolicy decode,
      Counter decodeDecisions) {
  }

  private final PolicyCatalog<PrefillPolicy> prefillPolicies =
      PolicyCatalog.load(PREFILL, PrefillPolicyFactory.class);
  private final PolicyCatalog<DecodePolicy> decodePolicies =
      PolicyCatalog.load(DECODE, DecodePolicyFactory.class);
  private final MeterRegistry metrics;
  private final InFlightCounts inFlight = new InFlightCounts();
  private final AtomicReference<Policies> policies = new AtomicReference<>();

  private Routing(MeterRegistry metrics) {
    this.metrics = metrics;
  }

  /**
   * Routing with the policies {@code options} names.
   *
   * @param metrics where the decisions are counted
   * @throws IllegalArgumentException for an unknown policy (the message lists the known ones)
   *     or parameters a policy does not take
   */
  public static Routing create(RoutingOptions options, MeterRegistry metrics) {
    Routing routing = new Routing(metrics);
    routing.reconfigure(options);
    return routing;
  }

  /**
   * Replaces the policies with those {@code options} names. Both are made before either is
   * replaced, so a bad name or parameter leaves the policies in use as they were. Choices
   * already running finish with the policies they started with.
   *
   * @throws IllegalArgumentException as {@link #create} does
   */
  public void reconfigure(RoutingOptions options) {
    Policies next = new Policies(
        prefillPolicies.create(options.getPrefillPolicy(), options.getPrefillPolicyParams()),
        decisions(PREFILL, options.getPrefillPolicy()),
        decodePolicies.create(options.getDecodePolicy(), options.getDecodePolicyParams()),
        decisions(DECODE, options.getDecodePolicy()));
    policies.set(next);
    LOG.info("routing policies: {}", options.toJson().encode());
  }

  private Counter decisions(String kind, String policy) {
    return Counter.builder("duet.routing.decisions")
        .description("Instances chosen for requests, by routing policy")
        .tag("kind", kind).tag("policy", policy).register(metrics);
  }

  /** This proxy's in-flight counts, which the caller keeps as it sends and ends work. */
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
    Policies current = policies.get();
    return decide(candidates, c -> current.prefill().choose(request, c),
        current.prefillDecisions()).map(PrefillCandidate::entry);
  }

  /**
   * The decode target for a request, chosen among the serving targets that serve its model
   * with the KV layout {@code fingerprint}, less {@code excluded}.
   *
   * @param instances the live registry
   * @param excluded targets that already refused the request
   * @return empty when no target is compatible or the policy refused them all
   */
  public Optional<DecodeTarget> chooseDecode(List<InstanceInfo> instances,
      RoutingRequest request, String fingerprint, Set<DecodeTarget> excluded) {
    List<DecodeCandidate> candidates = new ArrayList<>();
    for (InstanceInfo entry : instances) {
      DecodeTarget target = DecodeTarget.of(entry);
      if (entry.role() == Role.DECODE && entry.isServing()
          && entry.modelName().equals(request.model())
          && entry.fingerprint().equals(fingerprint) && !excluded.contains(target)) {
        candidates.add(new DecodeCandidate(target, entry, inFlight.requests(target)));
      }
    }
    Policies current = policies.get();
    return decide(candidates, c -> current.decode().choose(request, c),
        current.decodeDecisions()).map(DecodeCandidate::target);
  }

  private static <C> Optional<C> decide(List<C> candidates,
      Function<List<C>, Optional<C>> policy, Counter decisions) {
    if (candidates.isEmpty()) {
      return Optional.empty();
    }
    Optional<C> choice = policy.apply(List.copyOf(candidates));
    choice.ifPresent(c -> decisions.increment());
    return choice;
  }
}
