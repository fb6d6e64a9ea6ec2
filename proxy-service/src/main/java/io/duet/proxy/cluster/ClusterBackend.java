package io.duet.proxy.cluster;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.DecodeEvent;
import io.duet.contract.DecodeRequest;
import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.PrefillRequest;
import io.duet.contract.PrefillResult;
import io.duet.contract.Role;
import io.duet.contract.StreamCredit;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.eventbus.EventBus;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.eventbus.ReplyException;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
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
 * Runs completions through the cluster: picks a prefill instance, has it prefill the prompt,
 * picks a decode instance with the same KV layout, hands it the KV handle and relays the token
 * stream. Decode events of every request arrive on one address per backend and are routed by
 * request id, so no per-request event-bus registration is needed.
 *
 * <p>Failure detection: every request has a deadline, and a request whose prefill or decode
 * instance leaves the registry fails at once instead of waiting for the deadline. Whatever
 * ends a request (success, failure, cancel) releases what it holds on the instances.
 *
 * <p>A backend is confined to the Vert.x context it is opened on. A proxy that serves HTTP on
 * several event loops has a backend per event loop ({@link #perEventLoop}); a request stays on
 * the event loop it came in on, from its HTTP request to its last token.
 *
 * <p>A decode instance that does not take a request is not always the end of it: when it
 * refuses the request as OVERLOADED or UNAVAILABLE, or nothing handles its address any more
 * because it has just left (the registry still lists it until its heartbeats time out), the
 * request goes to the next compatible decode instance that has not failed it, up to
 * {@link #DECODE_ATTEMPTS} instances in all, and fails only when none is left. Every attempt
 * hands over the same KV handle, without prefilling again: those failures come before any
 * pull, so the lease is untouched, and within a round trip, far inside the lease. A lease that
 * has expired by this proxy's clock ends the attempts, since the next instance could only fail
 * to pull it.
 */
public final class ClusterBackend implements CompletionBackend, ClusterStream.Control {

  private static final Logger LOG = LoggerFactory.getLogger(ClusterBackend.class);
  private static final long LIVENESS_CHECK_MILLIS = 500;
  /** Decode instances asked at most per request, the first one included. */
  static final int DECODE_ATTEMPTS = 3;

  private final Vertx vertx;
  private final EventBus eventBus;
  private final Supplier<List<InstanceInfo>> registry;
  private final String streamAddress;
  private final int credits;
  private final long requestTimeoutMillis;
  private final InstancePicker picker;
  private final Map<String, Job> jobs = new HashMap<>();
  private MessageConsumer<JsonObject> events;
  private long livenessTimer;

  /** The state of one request as it moves through the cluster. */
  private static final class Job {
    final CompletionJob completion;
    final ClusterStream stream;
    final long estimatedPromptTokens;
    InstanceInfo prefill;
    InstanceInfo decode;
    /** Decode instances that did not take the request. */
    final Set<String> refused = new HashSet<>();
    String transferId;
    long deadlineTimer;

    Job(CompletionJob completion, ClusterStream stream) {
      this.completion = completion;
      this.stream = stream;
      // The reference deployment balances prefill by in-flight prompt length; before the
      // prefill instance has tokenized a text, characters / 4 stands in for tokens.
      this.estimatedPromptTokens = completion.promptTokens().isEmpty()
          ? Math.max(1, completion.prompt().length() / 4) : completion.promptTokens().size();
    }
  }

  /**
   * The backend of a proxy with one event loop.
   *
   * @param registry the live instances (the registry's view)
   * @param proxyInstanceId names this proxy's stream address
   * @param credits decode events in flight per request before the proxy grants more
   */
  public ClusterBackend(Vertx vertx, Supplier<List<InstanceInfo>> registry, String proxyInstanceId,
      int credits, long requestTimeoutMillis) {
    this(vertx, registry, Addresses.proxyStream(proxyInstanceId, 0), new InstancePicker(), credits,
        requestTimeoutMillis);
  }

  private ClusterBackend(Vertx vertx, Supplier<List<InstanceInfo>> registry, String streamAddress,
      InstancePicker picker, int credits, long requestTimeoutMillis) {
    this.vertx = vertx;
    this.eventBus = vertx.eventBus();
    this.registry = registry;
    this.streamAddress = streamAddress;
    this.picker = picker;
    this.credits = credits;
    this.requestTimeoutMillis = requestTimeoutMillis;
  }

  /**
   * The backends of a proxy with several event loops, one per call (see {@link
   * #ClusterBackend(Vertx, Supplier, String, int, long)} for the parameters). They share one
   * {@link InstancePicker}, so that each one's choices count the requests the others have in
   * flight. Each has a stream address of its own: several consumers of one address would get
   * its messages in turn, and decode events must reach the backend whose request they belong to.
   */
  public static Supplier<ClusterBackend> perEventLoop(Vertx vertx,
      Supplier<List<InstanceInfo>> registry, String proxyInstanceId, int credits,
      long requestTimeoutMillis) {
    InstancePicker picker = new InstancePicker();
    AtomicInteger made = new AtomicInteger();
    return () -> new ClusterBackend(vertx, registry,
        Addresses.proxyStream(proxyInstanceId, made.getAndIncrement()), picker, credits,
        requestTimeoutMillis);
  }

  /** Registers the stream address; completes once the cluster can route to it. */
  @Override
  public Future<Void> open() {
    events = eventBus.consumer(streamAddress, this::onEvent);
    livenessTimer = vertx.setPeriodic(LIVENESS_CHECK_MILLIS, t -> failJobsOfLostInstances());
    return events.completion();
  }

  @Override
  public Future<Void> close() {
    vertx.cancelTimer(livenessTimer);
    for (Job job : new ArrayList<>(jobs.values())) {
      job.stream.cancel();
    }
    return events == null ? Future.succeededFuture() : events.unregister();
  }

  @Override
  public List<String> models() {
    return servedModels(registry.get());
  }

  /** The models that at least one prefill and one decode instance of the same KV layout serve. */
  public static List<String> servedModels(List<InstanceInfo> instances) {
    Set<String> prefill = new TreeSet<>();
    Set<String> served = new TreeSet<>();
    for (InstanceInfo i : instances) {
      if (i.role() == Role.PREFILL) {
        prefill.add(i.modelName() + "\u0000" + i.fingerprint());
      }
    }
    for (InstanceInfo i : instances) {
      if (i.role() == Role.DECODE && prefill.contains(i.modelName() + "\u0000" + i.fingerprint())) {
        served.add(i.modelName());
      }
    }
    return List.copyOf(served);
  }

  @Override
  public CompletionStream start(CompletionJob completion) {
    ClusterStream stream = new ClusterStream(completion.requestId(), credits, this);
    Job job = new Job(completion, stream);
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

  private void prefill(Job job) {
    if (job.stream.isDone()) {
      return;
    }
    List<InstanceInfo> instances = registry.get();
    String model = job.completion.model();
    var candidate = picker.prefill(instances, model);
    if (candidate.isEmpty()) {
      fail(job, Failure.UNAVAILABLE, "no prefill instance serves model " + model);
      return;
    }
    job.prefill = candidate.get();
    picker.prefillStarted(job.prefill.instanceId(), job.estimatedPromptTokens);
    PrefillRequest request = new PrefillRequest(job.completion.requestId(),
        job.completion.prompt(),
        job.completion.promptTokens().stream().mapToInt(Integer::intValue).toArray(),
        job.completion.sampling());
    eventBus.<JsonObject>request(Addresses.prefill(job.prefill.instanceId()), request.toJson(),
            new DeliveryOptions().setSendTimeout(requestTimeoutMillis))
        .onComplete(reply -> {
          picker.prefillEnded(job.prefill.instanceId(), job.estimatedPromptTokens);
          if (reply.failed()) {
            fail(job, Failure.of(reply.cause()), "prefill on " + job.prefill.instanceId()
                + " failed: " + Failure.text(reply.cause()));
            return;
          }
          PrefillResult result;
          try {
            result = PrefillResult.fromJson(reply.result().body());
          } catch (RuntimeException e) {
            fail(job, Failure.INTERNAL, "unreadable prefill result from "
                + job.prefill.instanceId() + ": " + e.getMessage());
            return;
          }
          job.transferId = result.kv().transferId();
          job.stream.prefilled(result.queueMicros(), result.prefillMicros());
          if (job.stream.isDone()) {
            releaseLease(job);
            return;
          }
          decode(job, result);
        });
  }

  private void decode(Job job, PrefillResult result) {
    var candidate = pickDecode(job, result);
    if (candidate.isEmpty()) {
      fail(job, Failure.UNAVAILABLE, "no decode instance of model " + job.completion.model()
          + " has KV layout " + result.kv().fingerprint());
      return;
    }
    sendDecode(job, result, candidate.get());
  }

  private Optional<InstanceInfo> pickDecode(Job job, PrefillResult result) {
    return picker.decode(registry.get(), job.completion.model(), result.kv().fingerprint(),
        job.refused);
  }

  private void sendDecode(Job job, PrefillResult result, InstanceInfo instance) {
    job.decode = instance;
    picker.decodeStarted(instance.instanceId());
    DecodeRequest request = new DecodeRequest(job.completion.requestId(), result.kv(),
        result.firstToken(), result.samplerState(), result.promptTokens(),
        job.completion.sampling(), streamAddress, credits);
    eventBus.<JsonObject>request(Addresses.decode(instance.instanceId()), request.toJson(),
            new DeliveryOptions().setSendTimeout(requestTimeoutMillis))
        .onFailure(error -> decodeNotTaken(job, result, error));
  }

  /**
   * The decode request failed: tries the next decode instance when another one may take the
   * request (see the class comment), else fails the request.
   */
  private void decodeNotTaken(Job job, PrefillResult result, Throwable error) {
    Failure failure = Failure.of(error);
    String message = "decode on " + job.decode.instanceId() + " did not take the request: "
        + Failure.text(error);
    if (anotherDecodeMayTakeIt(error) && jobs.get(job.completion.requestId()) == job
        && job.refused.size() + 1 < DECODE_ATTEMPTS
        && System.currentTimeMillis() < result.kv().leaseExpiresAtMillis()) {
      job.refused.add(job.decode.instanceId());
      var next = pickDecode(job, result);
      if (next.isPresent()) {
        LOG.info("request {}: {}; trying decode instance {}", job.completion.requestId(),
            message, next.get().instanceId());
        picker.decodeEnded(job.decode.instanceId());
        sendDecode(job, result, next.get());
        return;
      }
    }
    fail(job, failure, message);
  }

  /**
   * Whether a failed decode request may go to another decode instance: the instance refused it
   * as OVERLOADED or UNAVAILABLE, or nobody handles its address any more. Only the reply to the
   * request comes here, and a decode instance replies as soon as it has queued a request, before
   * it pulls the KV or decodes a token; every failure after that comes as a decode event and
   * fails the request, never moves it. Other failures (no reply in time, an error on the way)
   * do not move it either: the instance may have taken the request after all.
   */
  private static boolean anotherDecodeMayTakeIt(Throwable error) {
    if (!(error instanceof ReplyException reply)) {
      return false;
    }
    return switch (reply.failureType()) {
      case NO_HANDLERS -> true;
      case RECIPIENT_FAILURE -> Failure.of(reply) == Failure.OVERLOADED
          || Failure.of(reply) == Failure.UNAVAILABLE;
      default -> false;
    };
  }

  private void onEvent(Message<JsonObject> message) {
    DecodeEvent event;
    try {
      event = DecodeEvent.fromJson(message.body());
    } catch (IllegalArgumentException e) {
      LOG.warn("dropping a bad decode event: {}", e.getMessage());
      return;
    }
    Job job = jobs.get(event.requestId());
    if (job == null) {
      return;
    }
    if (event.failure() != null) {
      fail(job, Failure.parse(event.failure()), event.error());
      return;
    }
    job.stream.deliver(event);
    if (event.isLast()) {
      end(job);
    }
  }

  private void failJobsOfLostInstances() {
    if (jobs.isEmpty()) {
      return;
    }
    Set<String> live = new TreeSet<>();
    for (InstanceInfo i : registry.get()) {
      live.add(i.instanceId());
    }
    for (Job job : new ArrayList<>(jobs.values())) {
      if (job.decode != null && !live.contains(job.decode.instanceId())) {
        fail(job, Failure.UNAVAILABLE, "decode instance " + job.decode.instanceId()
            + " left the cluster mid-request");
      } else if (job.decode == null && job.prefill != null
          && !live.contains(job.prefill.instanceId())) {
        fail(job, Failure.UNAVAILABLE, "prefill instance " + job.prefill.instanceId()
            + " left the cluster mid-request");
      }
    }
  }

  @Override
  public void grant(ClusterStream stream, int granted) {
    Job job = jobs.get(stream.requestId);
    if (job != null && job.decode != null) {
      eventBus.send(Addresses.decodeControl(job.decode.instanceId()),
          new StreamCredit(stream.requestId, granted).toJson());
    }
  }

  @Override
  public void cancel(ClusterStream stream) {
    Job job = jobs.get(stream.requestId);
    if (job != null) {
      abandon(job, "client went away");
    }
  }

  private void fail(Job job, Failure failure, String message) {
    if (jobs.get(job.completion.requestId()) != job) {
      return;
    }
    LOG.warn("request {} failed: {}", job.completion.requestId(), message);
    abandon(job, message);
    job.stream.fail(failure, message);
  }

  /** Stops the job on whichever instance has it and frees the KV lease. */
  private void abandon(Job job, String reason) {
    Cancel cancel = new Cancel(job.completion.requestId(), null, reason);
    if (job.decode != null) {
      eventBus.send(Addresses.decodeControl(job.decode.instanceId()), cancel.toJson());
    } else if (job.prefill != null) {
      eventBus.send(Addresses.prefillControl(job.prefill.instanceId()), cancel.toJson());
    }
    releaseLease(job);
    end(job);
  }

  /** Frees the prefill instance's KV lease; harmless when it already ended. */
  private void releaseLease(Job job) {
    if (job.transferId != null && job.prefill != null) {
      eventBus.send(Addresses.prefillControl(job.prefill.instanceId()),
          new Cancel(job.completion.requestId(), job.transferId, "request ended").toJson());
    }
  }

  private void end(Job job) {
    if (jobs.remove(job.completion.requestId(), job)) {
      vertx.cancelTimer(job.deadlineTimer);
      if (job.decode != null) {
        picker.decodeEnded(job.decode.instanceId());
      }
    }
  }
}
