package io.duet.proxy.cluster;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.DecodeEvent;
import io.duet.contract.DecodeRequest;
import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.PrefillRequest;
import io.duet.contract.PrefillResult;
import io.duet.contract.PrefillStarted;
import io.duet.contract.Role;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.routing.DecodeClaim;
import io.duet.proxy.routing.DecodeTarget;
import io.duet.proxy.routing.InFlightCounts;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingOptions;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.AsyncResult;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.eventbus.EventBus;
import io.vertx.core.eventbus.Message;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs completions through the cluster: has {@link Routing} choose a prefill instance, has it
 * prefill the prompt, claims a slot on a decode target with the same KV layout from
 * {@link Routing} (waiting for one when every target holds as many of this proxy's requests as
 * the cap allows), hands the target the KV handle and relays the token stream
 * ({@link StreamRelay}).
 *
 * <p>The first token: the prefill result carries its text, and (unless switched off) the client
 * gets it the moment the result arrives, before any decode instance is involved; the decode
 * instance is told so and streams from the second token on. A request that its first token ends
 * ({@code max_tokens} 1, an end token, a stop string) never reaches a decode instance: its
 * prefill instance freed the KV instead of leasing it.
 *
 * <p>The KV streamed while prefill runs (unless switched off): when the prefill instance and a
 * decode target with a slot free at once announce {@link InstanceInfo#KV_LAYER_STREAMING}, the
 * slot is claimed before the prompt is sent; the prefill instance answers first with the
 * lease's handle as the prompt's batch starts ({@link PrefillStarted}), the decode target gets
 * it at once and pulls the KV layer by layer while the prompt is computed, and the stream ends
 * with the first token. The first token still reaches the client from the prefill result. A
 * request that its first token ends then has a decode target: it is told to let the request go
 * (its pull ends with that news, not an error), and its slot is given back.
 *
 * <p>Rolling upgrades: a feature is used only with instances that announce it
 * ({@link InstanceInfo#capabilities}); the first token comes from the prefill result only while
 * every decode instance of the layout announces {@link InstanceInfo#FIRST_TOKEN_FROM_PREFILL},
 * and its request then goes only to those that do, so that no client gets it twice.
 *
 * <p>A request waiting for a decode slot holds its KV lease on the prefill instance. It waits
 * at most until {@value #LEASE_MARGIN_MILLIS} ms before the lease ends: then it gives up its
 * place, its lease is released and it fails as OVERLOADED, as when the queue is full. Prefilling
 * it again instead would spend prefill work on a cluster already short of decode slots, and let
 * a request wait without a bound; a client may retry it.
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
  /**
   * How long before its KV lease ends a request stops waiting for a decode slot: the decode
   * instance must receive the request and start its pull (which extends the lease) before then.
   */
  static final long LEASE_MARGIN_MILLIS = 1000;

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
  /** Whether the client gets the first token from the prefill result. */
  private final boolean firstTokenFromPrefill;
  /** Whether the KV is streamed to a decode target while prefill runs, where it can be. */
  private final boolean kvLayerStreaming;
  /** What a decode target must announce to take a request whose first token went out. */
  private static final Set<String> FIRST_TOKEN = Set.of(InstanceInfo.FIRST_TOKEN_FROM_PREFILL);
  /** What both instances must announce for a request whose KV is streamed. */
  private static final Set<String> STREAMING = InstanceInfo.ALL_CAPABILITIES;
  /** The models this proxy expects to serve: configured, or served since it started. Shared. */
  private final Set<String> expectedModels;

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
        requestTimeoutMillis, ConcurrentHashMap.newKeySet(), true, true);
  }

  private ClusterBackend(Vertx vertx, Supplier<List<InstanceInfo>> registry, String streamAddress,
      Routing routing, int credits, long requestTimeoutMillis, Set<String> expectedModels,
      boolean firstTokenFromPrefill, boolean kvLayerStreaming) {
    this.expectedModels = expectedModels;
    this.firstTokenFromPrefill = firstTokenFromPrefill;
    this.kvLayerStreaming = kvLayerStreaming;
    this.vertx = vertx;
    this.eventBus = vertx.eventBus();
    this.registry = registry;
    this.routing = routing;
    this.inFlight = routing.inFlight();
    this.credits = credits;
    this.requestTimeoutMillis = requestTimeoutMillis;
    this.relay = new StreamRelay(eventBus, streamAddress, jobs::get, this::decodeFailed,
        this::decodeEnded);
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
   *
   * @param configuredModels the models the proxy is configured to serve: while none of their
   *     instances is registered, their requests get 503, not 404 ({@link #expects})
   * @param firstTokenFromPrefill whether the client gets the first token from the prefill
   *     result (else from the decode instance, after the KV pull)
   * @param kvLayerStreaming whether, with {@code firstTokenFromPrefill}, the KV is streamed to
   *     a decode target while prefill runs, where the instances can
   */
  public static Supplier<ClusterBackend> perEventLoop(Vertx vertx,
      Supplier<List<InstanceInfo>> registry, String proxyInstanceId, Routing routing, int credits,
      long requestTimeoutMillis, Collection<String> configuredModels,
      boolean firstTokenFromPrefill, boolean kvLayerStreaming) {
    AtomicInteger made = new AtomicInteger();
    Set<String> expected = ConcurrentHashMap.newKeySet();
    expected.addAll(configuredModels);
    return () -> new ClusterBackend(vertx, registry,
        Addresses.proxyStream(proxyInstanceId, made.getAndIncrement()), routing, credits,
        requestTimeoutMillis, expected, firstTokenFromPrefill, kvLayerStreaming);
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

  /** Refuses a job when the proxy's queue for decode slots is full (see {@link Routing#queueFull}). */
  @Override
  public void checkCapacity(String model) {
    if (routing.queueFull(registry.get(), model)) {
      throw new CompletionException(Failure.OVERLOADED, queueFull(model));
    }
  }

  private static String queueFull(String model) {
    return "no decode instance of model " + model + " has a free slot and the proxy's queue of "
        + "requests waiting for one is full; retry later";
  }

  @Override
  public List<String> models() {
    List<String> served = servedModels(registry.get());
    expectedModels.addAll(served);
    return served;
  }

  @Override
  public boolean expects(String model) {
    return expectedModels.contains(model);
  }

  /** {@code duet-sim} when any instance serving {@code model} runs the simulated engine. */
  @Override
  public String owner(String model) {
    return registry.get().stream().anyMatch(i -> i.modelName().equals(model) && i.isSimulated())
        ? SIMULATED_OWNER : OWNER;
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
    job.streamKv = streamsKv(job, chosen.get()) && claimStreamingDecode(job, chosen.get());
    sendPrefill(job, chosen.get());
  }

  /**
   * Whether the prompt's KV may go to a decode target while {@code prefill} computes it: a
   * request its first token does not end for sure, a first prefill, and an instance that can.
   */
  private boolean streamsKv(ClusterJob job, InstanceInfo prefill) {
    return kvLayerStreaming && firstTokenFromPrefill(job, prefill) && !job.prefilledAgain
        && job.completion.sampling().maxTokens() > 1 && prefill.can(STREAMING);
  }

  /**
   * Whether the client gets the first token from the result of {@code prefill}: never twice,
   * so only while every decode instance of its layout leaves it out of its stream.
   */
  private boolean firstTokenFromPrefill(ClusterJob job, InstanceInfo prefill) {
    return firstTokenFromPrefill && job.first == null && registry.get().stream()
        .filter(i -> i.role() == Role.DECODE && i.modelName().equals(prefill.modelName())
            && i.fingerprint().equals(prefill.fingerprint()))
        .allMatch(i -> i.can(FIRST_TOKEN));
  }

  /**
   * Claims a decode slot that can take the KV as {@code prefill} computes it; false, holding
   * nothing, when none is free at once (the request then goes the way of a prefilled one).
   */
  private boolean claimStreamingDecode(ClusterJob job, InstanceInfo prefill) {
    int number = ++job.claims;
    Context context = vertx.getOrCreateContext();
    DecodeClaim claim = routing.claimDecode(registry.get(), job.routing, prefill.fingerprint(),
        STREAMING, job.decodeAttempts.refused(),
        target -> context.runOnContext(v -> slotGranted(job, number, target)));
    if (claim.outcome() == DecodeClaim.Outcome.PLACED) {
      job.decode = claim.target();
      // the prompt's length is the proxy's estimate until the prefill instance has it
      job.decodeRouting = job.routing;
      return true;
    }
    if (claim.outcome() == DecodeClaim.Outcome.WAITING) {
      job.claims++; // a slot already on its way is given back when it comes
      claim.withdraw();
    }
    return false;
  }

  private Optional<InstanceInfo> choosePrefill(ClusterJob job) {
    return routing.choosePrefill(registry.get(), job.routing, job.prefillAttempts.refused());
  }

  private void sendPrefill(ClusterJob job, InstanceInfo target) {
    job.prefill = target;
    int sent = ++job.prefillRequests;
    inFlight.prefillStarted(target.instanceId(), job.routing.promptTokens());
    job.firstTokenAsked = firstTokenFromPrefill(job, target);
    PrefillRequest request = new PrefillRequest(job.requestId(), job.completion.prompt(),
        job.completion.promptTokens().stream().mapToInt(Integer::intValue).toArray(),
        job.completion.sampling(), job.firstTokenAsked, job.streamKv);
    eventBus.<JsonObject>request(Addresses.prefill(target.instanceId()), request.toJson(),
            new DeliveryOptions().setSendTimeout(requestTimeoutMillis))
        .onComplete(reply -> prefillAnswered(job, target, sent, reply));
  }

  /** The prefill instance's answer: its result, a failure, or the start of a streamed KV. */
  private void prefillAnswered(ClusterJob job, InstanceInfo target, int sent,
      AsyncResult<Message<JsonObject>> reply) {
    boolean started = reply.succeeded() && PrefillStarted.is(reply.result().body());
    if (!started) {
      inFlight.prefillEnded(target.instanceId(), job.routing.promptTokens());
    }
    if (jobs.get(job.requestId()) != job || job.prefillRequests != sent) {
      // The request ended, or went to another prefill instance, while this one worked on
      // it: no decode instance will pull the KV it answered with.
      if (started) {
        reply.result().fail(Failure.CANCELLED.code(), "request ended or moved on");
      } else if (reply.succeeded()) {
        cancelOnPrefill(target.instanceId(), job.requestId(), "request ended or moved on");
      }
      return;
    }
    if (reply.failed()) {
      if (job.streamedKv != null) {
        // its decode target was pulling the KV: the request cannot move on unseen
        fail(job, Failure.of(reply.cause()), "prefill failed: " + Failure.text(reply.cause()));
      } else {
        prefillNotTaken(job, target, reply.cause());
      }
      return;
    }
    if (started) {
      streamStarted(job, target, sent, reply.result());
      return;
    }
    PrefillResult result;
    try {
      result = PrefillResult.fromJson(reply.result().body());
    } catch (RuntimeException e) {
      fail(job, Failure.INTERNAL, "unreadable prefill result: " + e.getMessage());
      return;
    }
    job.prefilled = result;
    job.stream.prefilled(result.queueMicros(), result.prefillMicros());
    if (job.stream.isDone()) {
      leases.release(job);
      return;
    }
    if (job.firstTokenAsked && result.firstText() != null && streamFirstToken(job, result)) {
      return;
    }
    if (job.streamedKv != null) {
      // the decode target has the request, and the KV's stream ends with the token
      if (job.decodeEndAfterPrefill != null) {
        job.decodeEndAfterPrefill.run();
      }
      return;
    }
    job.decodeRouting = job.routing.withPromptTokens(result.promptTokens());
    claimDecode(job, Failure.UNAVAILABLE, "no decode instance of model "
        + job.completion.model() + " has KV layout " + result.kv().fingerprint());
  }

  /**
   * The prefill instance started computing a prompt whose KV is streamed: its decode target
   * gets the handle now, and the prefill instance's result comes as the reply to the answer.
   */
  private void streamStarted(ClusterJob job, InstanceInfo target, int sent,
      Message<JsonObject> started) {
    try {
      job.streamedKv = PrefillStarted.fromJson(started.body()).kv();
    } catch (RuntimeException e) {
      started.fail(Failure.BAD_REQUEST.code(), "unreadable: " + e.getMessage());
      inFlight.prefillEnded(target.instanceId(), job.routing.promptTokens());
      fail(job, Failure.INTERNAL, "unreadable prefill start: " + e.getMessage());
      return;
    }
    started.<JsonObject>replyAndRequest(new JsonObject(),
            new DeliveryOptions().setSendTimeout(requestTimeoutMillis))
        .onComplete(reply -> prefillAnswered(job, target, sent, reply));
    sendDecode(job, job.decode);
  }

  /**
   * Hands the stream the first token of {@code result} (the client gets it at once when it ends
   * the request, else once a decode instance takes the request); returns whether that ended the
   * request (the token finished it, or the client went away on it), which then holds nothing
   * more.
   */
  private boolean streamFirstToken(ClusterJob job, PrefillResult result) {
    job.first = result;
    job.stream.firstToken(new DecodeEvent(job.requestId(), 0, result.firstText(), 1, 1,
        result.promptTokens(), result.finishReason(), null, null));
    if (jobs.get(job.requestId()) != job) {
      return true;
    }
    if (result.finishReason() != null) {
      if (job.streamedKv != null && job.decode != null) {
        // its pull ends with the news, and it lets the request go; this makes sure it does
        cancelOnDecode(job, "the first token ended the request");
      }
      leases.release(job); // none: the prefill instance freed the KV, unless it ignored the ask
      end(job);
      return true;
    }
    return false;
  }

  /**
   * Claims a decode slot for a prefilled job and sends it to its target, at once or when the
   * job gets its turn; fails it as {@code noTarget} when no target can take it, as OVERLOADED
   * when the proxy's queue is full.
   */
  private void claimDecode(ClusterJob job, Failure noTarget, String noTargetMessage) {
    Context context = vertx.getOrCreateContext();
    int number = ++job.claims;
    DecodeClaim claim = routing.claimDecode(registry.get(), job.decodeRouting,
        job.kv().fingerprint(), job.streamedKv != null ? STREAMING
            : job.first != null ? FIRST_TOKEN : Set.of(), job.decodeAttempts.refused(),
        target -> context.runOnContext(v -> slotGranted(job, number, target)));
    switch (claim.outcome()) {
      case PLACED -> sendDecode(job, claim.target());
      case WAITING -> waitForSlot(job, claim);
      case QUEUE_FULL -> fail(job, Failure.OVERLOADED, queueFull(job.completion.model()));
      case NO_TARGET -> fail(job, noTarget, noTargetMessage);
    }
  }

  /** The prefill request failed: asks the next prefill instance when {@link Attempts} allow. */
  private void prefillNotTaken(ClusterJob job, InstanceInfo target, Throwable error) {
    Failure failure = Failure.of(error);
    String text = Failure.text(error);
    if (job.prefillAttempts.mayMoveOn(target.instanceId(), error)) {
      var next = choosePrefill(job);
      if (next.isPresent()) {
        LOG.info("request {}: prefill on {} failed: {}; trying prefill instance {}",
            job.requestId(), target.instanceId(), text, next.get().instanceId());
        if (job.streamKv) {
          giveBackDecodeSlot(job);
          job.streamKv = streamsKv(job, next.get()) && claimStreamingDecode(job, next.get());
        }
        sendPrefill(job, next.get());
        return;
      }
    }
    // What the client did wrong is said as the prefill instance said it.
    fail(job, failure, failure == Failure.BAD_REQUEST || failure == Failure.CONTEXT_LENGTH
        ? text : "prefill failed: " + text);
  }

  /**
   * The prefill instance of {@code job} was lost after it took the request: it left the registry
   * before answering, or the decode instance could not reach it to pull the KV. The prompt is
   * prefilled again on another instance, unless it already was once or a decode event came for
   * the client (none can have come before the KV was pulled, but the rule is what keeps a second
   * prefill invisible to the client). A first token the client already got from the first
   * prefill result stays: the new KV is decoded after it, with that result's sampler state, as
   * the prompt's KV does not depend on which instance computed it. What the first attempt held is freed: the lost instance is
   * told to drop the request (should it still live), a decode slot held or awaited is given
   * back, and a decode instance that failed the pull has already dropped it.
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
    if (job.streamedKv != null && job.decode != null) {
      // it was pulling the lost instance's KV (or waits to): the new KV goes the plain way
      cancelOnDecode(job, "prefilled again elsewhere");
    }
    job.streamKv = false;
    job.streamedKv = null;
    job.prefillAttempts.exclude(job.prefill.instanceId());
    job.prefilled = null;
    giveBackDecodeSlot(job);
    job.decodeAttempts = new Attempts<>();
    prefill(job);
  }

  /**
   * Gives back the decode slot the job holds, or its place in the queue for one; a slot granted
   * to that place and on its way is given back when it comes ({@link #slotGranted}).
   */
  private void giveBackDecodeSlot(ClusterJob job) {
    job.claims++;
    if (job.waiting != null) {
      job.waiting.withdraw();
      job.waiting = null;
      vertx.cancelTimer(job.leaseTimer);
    }
    if (job.decode != null) {
      routing.releaseDecode(registry.get(), job.decode, job.decodeRouting);
      job.decode = null;
    }
  }

  private void waitForSlot(ClusterJob job, DecodeClaim claim) {
    job.waiting = claim;
    long wait = job.kv().leaseExpiresAtMillis() - LEASE_MARGIN_MILLIS
        - System.currentTimeMillis();
    job.leaseTimer = vertx.setTimer(Math.max(1, wait), t -> {
      if (claim.withdraw()) {
        job.waiting = null;
        fail(job, Failure.OVERLOADED, "no decode slot came free before the request's KV lease "
            + "ran out; retry later");
      }
    });
  }

  /**
   * A waiting job got the slot of its claim number {@code claim}; a job that has ended, or given
   * that claim up since, gives it back.
   */
  private void slotGranted(ClusterJob job, int claim, DecodeTarget target) {
    if (jobs.get(job.requestId()) != job || job.claims != claim) {
      routing.releaseDecode(registry.get(), target, job.decodeRouting);
      return;
    }
    job.waiting = null;
    vertx.cancelTimer(job.leaseTimer);
    sendDecode(job, target);
  }

  private void sendDecode(ClusterJob job, DecodeTarget target) {
    job.decode = target;
    DecodeRequest request;
    if (job.streamedKv != null) {
      // the first token and the sampler's state come at the end of the KV's stream
      job.stream.awaitFirstToken();
      request = new DecodeRequest(job.requestId(), job.streamedKv, 0, 0L,
          job.streamedKv.tokenCount(), job.completion.sampling(), relay.address(), credits,
          true, true, job.completion.coalesce());
    } else {
      PrefillResult result = job.prefilled;
      PrefillResult first = job.first != null ? job.first : result;
      request = new DecodeRequest(job.requestId(), result.kv(), first.firstToken(),
          first.samplerState(), result.promptTokens(), job.completion.sampling(),
          relay.address(), credits, job.first != null, false, job.completion.coalesce());
    }
    eventBus.<JsonObject>request(Addresses.decode(target.instanceId(), target.dpRank()),
        request.toJson(),
            new DeliveryOptions().setSendTimeout(requestTimeoutMillis))
        .onSuccess(taken -> {
          job.heardFromDecode();
          job.stream.decodeTook();
        })
        .onFailure(error -> decodeNotTaken(job, error));
  }

  /**
   * The decode request failed: gives the target's slot back and claims another when
   * {@link Attempts} allow, with the same KV handle, without prefilling again: a target that did
   * not take the request has not pulled, so the lease is untouched, and this comes within a round
   * trip, far inside the lease. A lease that has expired by this proxy's clock ends the attempts,
   * since the next target could only fail to pull it.
   */
  private void decodeNotTaken(ClusterJob job, Throwable error) {
    String message = "the decode instance did not take the request: " + Failure.text(error);
    DecodeTarget refused = job.decode;
    if (jobs.get(job.requestId()) == job
        && System.currentTimeMillis() < job.kv().leaseExpiresAtMillis()
        && job.decodeAttempts.mayMoveOn(refused, error)) {
      LOG.info("request {}: decode {} did not take it: {}; asking another decode instance",
          job.requestId(), job.decode, Failure.text(error));
      job.decode = null;
      routing.releaseDecode(registry.get(), refused, job.decodeRouting);
      claimDecode(job, Failure.of(error), message);
      return;
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
   * failure ends the request. One that comes while a streamed KV's prefill result is still to
   * come waits for it ({@link ClusterJob#decodeEndAfterPrefill}).
   */
  private void decodeFailed(ClusterJob job, Failure failure, String message) {
    if (awaitsPrefillResult(job)) {
      job.decodeEndAfterPrefill = () -> decodeFailed(job, failure, message);
      return;
    }
    if (failure == Failure.KV_UNREACHABLE) {
      prefillLost(job, failure, "the decode instance could not pull the KV: " + message);
    } else {
      fail(job, failure, message);
    }
  }

  /** The decode target sent its last event: the request ends, once its first token is out. */
  private void decodeEnded(ClusterJob job) {
    if (awaitsPrefillResult(job)) {
      job.decodeEndAfterPrefill = () -> end(job);
    } else {
      end(job);
    }
  }

  /** Whether the request's KV is streamed and the prefill result, its first token, is to come. */
  private static boolean awaitsPrefillResult(ClusterJob job) {
    return job.streamedKv != null && job.prefilled == null;
  }

  private void fail(ClusterJob job, Failure failure, String message) {
    if (jobs.get(job.requestId()) != job) {
      return;
    }
    // The instances are for the operator's log; the client's message does not name them.
    LOG.warn("request {} failed (prefill {}, decode {}): {}", job.requestId(),
        job.prefill == null ? "none" : job.prefill.instanceId(), job.decode, message);
    abandon(job, message);
    job.stream.fail(failure, message);
  }

  /** Stops the job on whichever instance has it and frees the KV lease. */
  private void abandon(ClusterJob job, String reason) {
    if (job.decode != null) {
      cancelOnDecode(job, reason);
    }
    // a streamed KV's decode target may have the request while its prompt is computed
    if (job.prefill != null && (job.decode == null || job.prefilled == null)) {
      cancelOnPrefill(job.prefill.instanceId(), job.requestId(), reason);
    }
    if (job.waiting != null) {
      // false: the slot is on its way, and slotGranted gives it back
      job.waiting.withdraw();
    }
    leases.release(job);
    end(job);
  }

  /** Has the request's decode target drop it, wherever it is there. */
  private void cancelOnDecode(ClusterJob job, String reason) {
    eventBus.send(Addresses.decodeControl(job.decode.instanceId(), job.decode.dpRank()),
        new Cancel(job.requestId(), null, reason).toJson());
  }

  /** Has a prefill instance drop the request: its queued prompt, or the lease of its KV. */
  private void cancelOnPrefill(String instanceId, String requestId, String reason) {
    eventBus.send(Addresses.prefillControl(instanceId),
        new Cancel(requestId, null, reason).toJson());
  }

  private void end(ClusterJob job) {
    if (jobs.remove(job.requestId(), job)) {
      vertx.cancelTimer(job.deadlineTimer);
      vertx.cancelTimer(job.leaseTimer);
      if (job.decode != null) {
        routing.releaseDecode(registry.get(), job.decode, job.decodeRouting);
      }
    }
  }
}
