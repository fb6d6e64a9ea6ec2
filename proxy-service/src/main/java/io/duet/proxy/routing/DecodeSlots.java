package io.duet.proxy.routing;

import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The decode side of {@link Routing}: the cap on this proxy's requests per decode target (the
 * reference deployment's "proxy batch size") and the queue of requests waiting under it.
 *
 * <p>A request claims a slot once it is prefilled. The decode policy chooses among the compatible
 * targets below the cap; when every compatible target is at the cap the request waits, and each
 * slot given back goes at once to the first waiting request, in the policy's
 * {@linkplain DecodePolicy#waitingOrder() order}, that may use it. When the queue is full the
 * request is refused.
 *
 * <p>One instance serves every event loop of a proxy. One lock guards the decode counts' changes,
 * the cap check before each and the queue, so no target ever holds more than the cap of this
 * proxy's requests, whatever the event loops do at once; the policy chooses under the lock. The
 * {@code onSlot} callbacks of waiting requests run after the lock is released, on the thread that
 * freed the slot.
 */
final class DecodeSlots {

  /** A request in the queue; it orders first by the policy's order, then by arrival. */
  final class Waiting {
    private final RoutingRequest request;
    private final String fingerprint;
    private final Set<String> capabilities;
    private final Set<DecodeTarget> refused;
    private final Consumer<DecodeTarget> onSlot;
    private long arrival;
    private long sinceNanos;

    private Waiting(RoutingRequest request, String fingerprint, Set<String> capabilities,
        Set<DecodeTarget> refused, Consumer<DecodeTarget> onSlot) {
      this.request = request;
      this.fingerprint = fingerprint;
      this.capabilities = Set.copyOf(capabilities);
      this.refused = Set.copyOf(refused);
      this.onSlot = onSlot;
    }

    boolean withdraw() {
      synchronized (DecodeSlots.this) {
        return queue.remove(this);
      }
    }

    private boolean accepts(InstanceInfo entry) {
      return entry.role() == Role.DECODE && entry.isServing()
          && entry.modelName().equals(request.model()) && entry.fingerprint().equals(fingerprint)
          && entry.can(capabilities) && !refused.contains(DecodeTarget.of(entry));
    }
  }

  private final Supplier<Routing.Config> config;
  private final InFlightCounts counts;
  private final MeterRegistry metrics;
  private final Timer waitTime;
  private final DistributionSummary loadAtPlacement;
  /** The in-flight gauge of each decode target chosen since it joined. */
  private final Map<DecodeTarget, Gauge> gauges = new ConcurrentHashMap<>();
  /** Guarded by {@code this}. */
  private TreeSet<Waiting> queue;
  /** Guarded by {@code this}. */
  private long arrivals;

  /**
   * @param config the current rules (policy, cap, queue bound), read under the lock
   * @param counts the decode counts this class alone changes
   */
  DecodeSlots(Supplier<Routing.Config> config, InFlightCounts counts, MeterRegistry metrics) {
    this.config = config;
    this.counts = counts;
    this.metrics = metrics;
    this.queue = new TreeSet<>(order(config.get()));
    this.waitTime = Timer.builder("duet.routing.queue.wait")
        .description("Time a prefilled request waited in the proxy for a decode slot (0 for "
            + "one that found a slot at once)")
        .publishPercentileHistogram().minimumExpectedValue(Duration.ofMillis(1))
        .maximumExpectedValue(Duration.ofMinutes(5)).register(metrics);
    // Exact counts at the small loads where a cap is usually set, then powers of two.
    this.loadAtPlacement = DistributionSummary.builder("duet.routing.decode.load.at.placement")
        .description("Requests this proxy had in flight on the decode target a request was "
            + "placed on, that request included")
        .serviceLevelObjectives(1, 2, 3, 4, 6, 8, 16, 32, 64, 128, 256, 512, 1024)
        .register(metrics);
    Gauge.builder("duet.routing.queue.length", this, DecodeSlots::waiting)
        .description("Prefilled requests waiting in the proxy for a decode slot")
        .register(metrics);
  }

  private static Comparator<Waiting> order(Routing.Config rules) {
    Comparator<RoutingRequest> policy = rules.decode().waitingOrder();
    return (a, b) -> {
      int byPolicy = policy.compare(a.request, b.request);
      return byPolicy != 0 ? byPolicy : Long.compare(a.arrival, b.arrival);
    };
  }

  /** See {@link Routing#claimDecode}. */
  DecodeClaim claim(List<InstanceInfo> instances, RoutingRequest request, String fingerprint,
      Set<String> capabilities, Set<DecodeTarget> refused, Consumer<DecodeTarget> onSlot) {
    Waiting ask = new Waiting(request, fingerprint, capabilities, refused, onSlot);
    List<InstanceInfo> compatible = instances.stream().filter(ask::accepts).toList();
    if (compatible.isEmpty()) {
      return DecodeClaim.NO_TARGET;
    }
    synchronized (this) {
      Routing.Config rules = config.get();
      List<DecodeCandidate> open = belowCap(compatible, rules);
      Optional<DecodeTarget> target = place(rules, request, open);
      if (target.isPresent()) {
        waitTime.record(0, TimeUnit.NANOSECONDS);
        return DecodeClaim.placed(target.get());
      }
      if (open.size() == compatible.size()) {
        return DecodeClaim.NO_TARGET;
      }
      if (queue.size() >= rules.queueSize()) {
        return DecodeClaim.QUEUE_FULL;
      }
      ask.arrival = arrivals++;
      ask.sinceNanos = System.nanoTime();
      queue.add(ask);
      return DecodeClaim.waiting(ask);
    }
  }

  /** See {@link Routing#releaseDecode}. */
  void release(List<InstanceInfo> instances, DecodeTarget target, RoutingRequest request) {
    List<Runnable> granted;
    synchronized (this) {
      counts.decodeEnded(target, request.decodeTokens());
      granted = grantLocked(instances);
    }
    granted.forEach(Runnable::run);
  }

  /** See {@link Routing#dispatchWaiting}. */
  void dispatch(List<InstanceInfo> instances) {
    List<Runnable> granted;
    synchronized (this) {
      granted = grantLocked(instances);
    }
    granted.forEach(Runnable::run);
  }

  /** Orders the queue by the current policy's order (after the policy changed). */
  synchronized void reorder() {
    TreeSet<Waiting> reordered = new TreeSet<>(order(config.get()));
    reordered.addAll(queue);
    queue = reordered;
  }

  /** See {@link Routing#queueFull}. */
  synchronized boolean full(List<InstanceInfo> instances, String model) {
    Routing.Config rules = config.get();
    return queue.size() >= rules.queueSize() && instances.stream().noneMatch(entry ->
        entry.role() == Role.DECODE && entry.isServing() && entry.modelName().equals(model)
            && hasRoom(entry, rules));
  }

  private boolean hasRoom(InstanceInfo entry, Routing.Config rules) {
    return counts.requests(DecodeTarget.of(entry)) < rules.decodeRankCap();
  }

  /** See {@link Routing#instanceLeft}. */
  void targetLeft(DecodeTarget target) {
    Gauge gauge = gauges.remove(target);
    if (gauge != null) {
      metrics.remove(gauge);
    }
  }

  synchronized int waiting() {
    return queue.size();
  }

  /**
   * Gives the free slots of {@code instances} to the waiting requests, first in order first.
   *
   * @return the {@code onSlot} calls to make once the lock is released
   */
  private List<Runnable> grantLocked(List<InstanceInfo> instances) {
    if (queue.isEmpty()) {
      return List.of();
    }
    Routing.Config rules = config.get();
    List<InstanceInfo> free = new ArrayList<>();
    for (InstanceInfo entry : instances) {
      if (entry.role() == Role.DECODE && entry.isServing() && hasRoom(entry, rules)) {
        free.add(entry);
      }
    }
    List<Runnable> granted = new ArrayList<>();
    for (Iterator<Waiting> waiting = queue.iterator(); waiting.hasNext() && !free.isEmpty(); ) {
      Waiting ask = waiting.next();
      Optional<DecodeTarget> target = place(rules, ask.request,
          belowCap(free.stream().filter(ask::accepts).toList(), rules));
      if (target.isPresent()) {
        waiting.remove();
        waitTime.record(System.nanoTime() - ask.sinceNanos, TimeUnit.NANOSECONDS);
        if (counts.requests(target.get()) >= rules.decodeRankCap()) {
          free.removeIf(entry -> DecodeTarget.of(entry).equals(target.get()));
        }
        granted.add(() -> ask.onSlot.accept(target.get()));
      }
    }
    return granted;
  }

  /** The entries below the cap, as candidates with this proxy's counts. */
  private List<DecodeCandidate> belowCap(List<InstanceInfo> entries, Routing.Config rules) {
    List<DecodeCandidate> open = new ArrayList<>(entries.size());
    for (InstanceInfo entry : entries) {
      DecodeTarget target = DecodeTarget.of(entry);
      int requests = counts.requests(target);
      if (requests < rules.decodeRankCap()) {
        open.add(new DecodeCandidate(target, entry, requests, counts.tokens(target)));
      }
    }
    return open;
  }

  /** The policy's choice among {@code open}, counted to the request; empty when it has none. */
  private Optional<DecodeTarget> place(Routing.Config rules, RoutingRequest request,
      List<DecodeCandidate> open) {
    if (open.isEmpty()) {
      return Optional.empty();
    }
    Optional<DecodeTarget> target = rules.decode().choose(request, List.copyOf(open))
        .map(DecodeCandidate::target);
    target.ifPresent(chosen -> {
      counts.decodeStarted(chosen, request.decodeTokens());
      loadAtPlacement.record(counts.requests(chosen));
      rules.decodeDecisions().increment();
      gauges.computeIfAbsent(chosen, absent -> Gauge.builder("duet.routing.decode.in.flight",
              counts, c -> c.requests(chosen))
          .description("Requests this proxy has in flight on a decode target")
          .tag("decode_instance", chosen.instanceId())
          .tag("rank", Integer.toString(chosen.dpRank())).register(metrics));
    });
    return target;
  }
}
