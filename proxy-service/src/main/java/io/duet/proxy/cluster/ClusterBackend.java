package io.duet.proxy.cluster;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.DecodeRequest;
import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.PrefillRequest;
import io.duet.contract.PrefillResult;
import io.duet.contract.Role;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.routing.DecodeTarget;
import io.duet.proxy.routing.InFlightCounts;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingOptions;
import io.duet.proxy.routing.RoutingRequest;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.eventbus.EventBus;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs completions through the cluster: has {@link Routing} choose a prefill instance, has it
 * prefill the prompt, has {@link Routing} choose a decode target with the same KV layout, hands
 * it the KV handle and relays the token stream ({@link StreamRelay}).
 *
 * <p>Failure detection: every request has a deadline, and a request whose decode instance leaves
 * the registry fails at once instead of waiting for the deadline ({@link LivenessCheck}). A
 * prefill instance or decode target that refuses a request before taking it (it is full or
 * draining, or has just left) is replaced by the next compatible one, a bounded number of
 * times ({@link Attempts}). A prefill instance lost after it took the request (it left the
 * registry before answering, or the decode instance could not reach it to pull the KV) is
 * replaced by prefilling the prompt again on another instance, once per request and only while
 * no decode event has come for the client, who then sees nothing but a later first token.
 * Whatever ends a request (success, failure, cancel) releases what it holds on the instances
 * ({@link KvLeases}).
 *
 * <p>A backend is confined to the Vert.x context it is opened on. A proxy that serves HTTP on
 * several event loops has a backend per event loop ({@link #perEventLoop}); a request stays on
 * the event loop it came in on, from its HTTP request to its last token.
 */
public final class ClusterBackend implements CompletionBackend, ClusterStream.Control {

  private static final Logger LOG = LoggerFactory.getLogger(ClusterBackend.class);

  private final Vertx vertx;
  private final EventBus eventBus;
  private final Supplier<List<InstanceInfo>> registry;
  private final int credits;
  private final long requestTimeoutMillis;
  private final Routing routing;
  private final InFlightCounts inFlight;
  private final Map<String, ClusterJob> jobs = new HashMap<>();
  private final StreamRelay relay;
  private final LivenessCheck liveness;
  private final KvLeases leases;

  /**
   * The backend of a proxy with one event loop, routing with the default policies.
   *
   * @param registry the live instances (the registry's view)
   * @param proxyInstanceId names this proxy's stream address
   * @param credits decode events in flight per request before the proxy grants more
   */
  public ClusterBackend(Vertx vertx, Supplier<List<InstanceInfo>> registry, String proxyInstanceId,
      int credits, long requestTimeoutMillis) {
    this(vertx, registry, Addresses.proxyStream(proxyInstanceId, 0),
        Routing.create(new RoutingOptions(), new SimpleMeterRegistry()), credits,
        requestTimeoutMillis);
  }

  private ClusterBackend(Vertx vertx, Supplier<List<InstanceInfo>> registry, String streamAddress,
      Routing routing, int credits, long requestTimeoutMillis) {
    this.vertx = vertx;
    this.eventBus = vertx.eventBus();
    this.registry = registry;
    this.routing = routing;
    this.inFlight = routing.inFlight();
    this.credits = credits;
    this.requestTimeoutMillis = requestTimeoutMillis;
    this.relay = new StreamRelay(eventBus, streamAddress, jobs::get, this::decodeFailed,
        this::end);
    this.liveness = new LivenessCheck(vertx, registry, jobs::values, this::fail,
        this::prefillLost);
    this.leases = new KvLeases(eventBus);
  }

  /**
   * The backends of a proxy with several event loops, one per call (see {@link
   * #ClusterBackend(Vertx, Supplier, String, int, long)} for the parameters). They share
   * {@code routing}, and with it its in-flight counts, so that each one's choices count the
   * requests the others have in flight. Each has a stream address of its own: several consumers
   * of one address would get its messages in turn, and decode events must reach the backend
   * whose request they belong to.
   */
  public static Supplier<ClusterBackend> perEventLoop(Vertx vertx,
      Supplier<List<InstanceInfo>> registry, String proxyInstanceId, Routing routing, int credits,
      long requestTimeoutMillis) {
    AtomicInteger made = new AtomicInteger();
    return () -> new ClusterBackend(vertx, registry,
        Addresses.proxyStream(proxyInstanceId, made.getAndIncrement()), routing, credits,
        requestTimeoutMillis);
  }

  /** Registers the stream address; completes once the cluster can route to it. */
  @Override
  public Future<Void> open() {
    liveness.start();
    return relay.open();
  }

  @Override
  public Future<Void> close() {
    liveness.stop();
    for (ClusterJob job : new ArrayList<>(jobs.values())) {
      job.stream.cancel();
    }
    return relay.close();
  }

  @Override
  public List<String> models() {
    return servedModels(registry.get());
  }

  /** The template the prefill instances of {@code model} announce (they render its prompts). */
  @Override
  public Optional<String> chatTemplate(String model) {
    return registry.get().stream()
        .filter(i -> i.role() == Role.PREFILL && i.modelName().equals(model)
            && i.chatTemplate() != null && !i.chatTemplate().isEmpty())
        .map(InstanceInfo::chatTemplate).findFirst();
  }

  /**
   * The models that at least one serving (not draining) prefill and decode instance of the same
   * KV layout serve.
   */
  public static List<String> servedModels(List<InstanceInfo> instances) {
    Set<String> prefill = new TreeSet<>();
    Set<String> served = new TreeSet<>();
    for (InstanceInfo i : instances) {
      if (i.role() == Role.PREFILL && i.isServing()) {
        prefill.add(i.modelName() + "\u0000" + i.fingerprint());
      }
    }
    for (InstanceInfo i : instances) {
      if (i.role() == Role.DECODE && i.isServing()
          && prefill.contains(i.modelName() + "\u0000" + i.fingerprint())) {
        served.add(i.modelName());
      }
    }
    return List.copyOf(served);
  }

  @Override
  public CompletionStream start(CompletionJob completion) {
    ClusterStream stream = new ClusterStream(completion.requestId(), credits, this);
    ClusterJob job = new ClusterJob(completion, stream);
    if (jobs.containsKey(completion.requestId())) {
      stream.fail(Failure.BAD_REQUEST, "request id " + completion.requestId() + " is in use");
      return stream;
    }
    jobs.put(completion.requestId(), job);
    job.deadlineTimer = vertx.setTimer(requestTimeoutMillis, t -> fail(job, Failure.TIMEOUT,
        "no answer within " + requestTimeoutMillis + " ms"));
    vertx.runOnContext(v -> prefill(job));
    return stream;
  }

  private void prefill(ClusterJob job) {
    if (job.stream.isDone()) {
      return;
    }
    var chosen = choosePrefill(job);
    if (chosen.isEmpty()) {
      fail(job, Failure.UNAVAILABLE, "no prefill instance serves model " + job.completion.model());
      return;
    }
    sendPrefill(job, chosen.get());
  }

  private Optional<InstanceInfo> choosePrefill(ClusterJob job) {
    return routing.choosePrefill(registry.get(), new RoutingRequest(job.requestId(),
        job.completion.model(), job.estimatedPromptTokens), job.prefillAttempts.refused());
  }

  private void sendPrefill(ClusterJob job, InstanceInfo target) {
    job.prefill = target;
    int sent = ++job.prefillRequests;
    inFlight.prefillStarted(target.instanceId(), job.estimatedPromptTokens);
    PrefillRequest request = new PrefillRequest(job.requestId(), job.completion.prompt(),
        job.completion.promptTokens().stream().mapToInt(Integer::intValue).toArray(),
        job.completion.sampling());
    eventBus.<JsonObject>request(Addresses.prefill(target.instanceId()), request.toJson(),
            new DeliveryOptions().setSendTimeout(requestTimeoutMillis))
        .onComplete(reply -> {
          inFlight.prefillEnded(target.instanceId(), job.estimatedPromptTokens);
          if (jobs.get(job.requestId()) != job || job.prefillRequests != sent) {
            // The request ended, or went to another prefill instance, while this one worked on
            // it: no decode instance will pull the KV it answered with.
            if (reply.succeeded()) {
              cancelOnPrefill(target.instanceId(), job.requestId(), "request ended or moved on");
            }
            return;
          }
          if (reply.failed()) {
            prefillNotTaken(job, target, reply.cause());
            return;
          }
          PrefillResult result;
          try {
            result = PrefillResult.fromJson(reply.result().body());
          } catch (RuntimeException e) {
            fail(job, Failure.INTERNAL, "unreadable prefill result from "
                + target.instanceId() + ": " + e.getMessage());
            return;
          }
          job.transferId = result.kv().transferId();
          job.stream.prefilled(result.queueMicros(), result.prefillMicros());
          decode(job, result);
        });
  }

  /** The prefill request failed: asks the next prefill instance when {@link Attempts} allow. */
  private void prefillNotTaken(ClusterJob job, InstanceInfo target, Throwable error) {
    String message = "prefill on " + target.instanceId() + " failed: " + Failure.text(error);
    if (job.prefillAttempts.mayMoveOn(target.instanceId(), error)) {
      var next = choosePrefill(job);
      if (next.isPresent()) {
        LOG.info("request {}: {}; trying prefill instance {}", job.requestId(), message,
            next.get().instanceId());
        sendPrefill(job, next.get());
        return;
      }
    }
    fail(job, Failure.of(error), message);
  }

  /**
   * The prefill instance of {@code job} was lost after it took the request: it left the registry
   * before answering, or the decode instance could not reach it to pull the KV. The prompt is
   * prefilled again on another instance, unless it already was once or a decode event came for
   * the client (none can have come before the KV was pulled, but the rule is what keeps a second
   * prefill invisible to the client). What the first attempt held is freed: the lost instance is
   * told to drop the request (should it still live), and a decode instance that failed the pull
   * has already dropped it.
   */
  private void prefillLost(ClusterJob job, Failure failure, String message) {
    if (jobs.get(job.requestId()) != job) {
      return;
    }
    if (job.prefilledAgain || job.stream.hasEvents()) {
      fail(job, failure, message);
      return;
    }
    LOG.warn("request {}: {}; prefilling it again on another instance", job.requestId(),
        message);
    job.prefilledAgain = true;
    cancelOnPrefill(job.prefill.instanceId(), job.requestId(), "prefilled again elsewhere");
    job.prefillAttempts.exclude(job.prefill.instanceId());
    job.transferId = null;
    if (job.decode != null) {
      inFlight.decodeEnded(job.decode);
      job.decode = null;
    }
    job.decodeAttempts = new Attempts<>();
    prefill(job);
  }

  private void decode(ClusterJob job, PrefillResult result) {
    var chosen = chooseDecode(job, result);
    if (chosen.isEmpty()) {
      fail(job, Failure.UNAVAILABLE, "no decode instance of model " + job.completion.model()
          + " has KV layout " + result.kv().fingerprint());
      return;
    }
    sendDecode(job, result, chosen.get());
  }

  private Optional<DecodeTarget> chooseDecode(ClusterJob job, PrefillResult result) {
    return routing.chooseDecode(registry.get(),
        new RoutingRequest(job.requestId(), job.completion.model(), result.promptTokens()),
        result.kv().fingerprint(), job.decodeAttempts.refused());
  }

  private void sendDecode(ClusterJob job, PrefillResult result, DecodeTarget target) {
    job.decode = target;
    inFlight.decodeStarted(target);
    DecodeRequest request = new DecodeRequest(job.requestId(), result.kv(), result.firstToken(),
        result.samplerState(), result.promptTokens(), job.completion.sampling(), relay.address(),
        credits);
    eventBus.<JsonObject>request(Addresses.decode(target.instanceId(), target.dpRank()),
        request.toJson(),
            new DeliveryOptions().setSendTimeout(requestTimeoutMillis))
        .onFailure(error -> decodeNotTaken(job, result, error));
  }

  /**
   * The decode request failed: asks the next decode target when {@link Attempts} allow, with the
   * same KV handle, without prefilling again: a target that did not take the request has not
   * pulled, so the lease is untouched, and this comes within a round trip, far inside the lease.
   * A lease that has expired by this proxy's clock ends the attempts, since the next target
   * could only fail to pull it.
   */
  private void decodeNotTaken(ClusterJob job, PrefillResult result, Throwable error) {
    String message = "decode on " + job.decode.instanceId() + " did not take the request: "
        + Failure.text(error);
    if (jobs.get(job.requestId()) == job
        && System.currentTimeMillis() < result.kv().leaseExpiresAtMillis()
        && job.decodeAttempts.mayMoveOn(job.decode, error)) {
      var next = chooseDecode(job, result);
      if (next.isPresent()) {
        LOG.info("request {}: {}; trying decode instance {}", job.requestId(), message,
            next.get().instanceId());
        inFlight.decodeEnded(job.decode);
        sendDecode(job, result, next.get());
        return;
      }
    }
    fail(job, Failure.of(error), message);
  }

  @Override
  public void grant(ClusterStream stream, int granted) {
    ClusterJob job = jobs.get(stream.requestId);
    if (job != null) {
      relay.grant(job, granted);
    }
  }

  @Override
  public void cancel(ClusterStream stream) {
    ClusterJob job = jobs.get(stream.requestId);
    if (job != null) {
      abandon(job, "client went away");
    }
  }

  /**
   * The decode target failed the request (its stream's last event): a KV it could not pull
   * because the prefill instance is unreachable may come from prefilling again; any other
   * failure ends the request.
   */
  private void decodeFailed(ClusterJob job, Failure failure, String message) {
    if (failure == Failure.KV_UNREACHABLE) {
      prefillLost(job, failure, "decode instance " + job.decode.instanceId()
          + " could not pull the KV: " + message);
    } else {
      fail(job, failure, message);
    }
  }

  private void fail(ClusterJob job, Failure failure, String message) {
    if (jobs.get(job.requestId()) != job) {
      return;
    }
    LOG.warn("request {} failed: {}", job.requestId(), message);
    abandon(job, message);
    job.stream.fail(failure, message);
  }

  /** Stops the job on whichever instance has it and frees the KV lease. */
  private void abandon(ClusterJob job, String reason) {
    if (job.decode != null) {
      eventBus.send(Addresses.decodeControl(job.decode.instanceId(), job.decode.dpRank()),
          new Cancel(job.requestId(), null, reason).toJson());
    } else if (job.prefill != null) {
      cancelOnPrefill(job.prefill.instanceId(), job.requestId(), reason);
    }
    leases.release(job);
    end(job);
  }

  /** Has a prefill instance drop the request: its queued prompt, or the lease of its KV. */
  private void cancelOnPrefill(String instanceId, String requestId, String reason) {
    eventBus.send(Addresses.prefillControl(instanceId),
        new Cancel(requestId, null, reason).toJson());
  }

  private void end(ClusterJob job) {
    if (jobs.remove(job.requestId(), job)) {
      vertx.cancelTimer(job.deadlineTimer);
      if (job.decode != null) {
        inFlight.decodeEnded(job.decode);
      }
    }
  }
}
