package io.duet.prefill;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.Failure;
import io.duet.contract.ServiceException;
import io.duet.contract.InstanceInfo;
import io.duet.contract.KvHandle;
import io.duet.contract.PrefillRequest;
import io.duet.contract.PrefillResult;
import io.duet.contract.PrefillStarted;
import io.duet.contract.Role;
import io.duet.engine.Engine;
import io.duet.engine.FinishReason;
import io.duet.engine.SamplingParams;
import io.duet.engine.Tokenizer;
import io.duet.kv.KvTransferServer;
import io.duet.kv.LeaseTable;
import io.duet.prefill.impl.PrefillScheduler;
import io.duet.prefill.impl.PromptLimits;
import io.duet.service.EngineMetrics;
import io.duet.service.Sampling;
import io.duet.service.StatusServer;
import io.duet.service.WorkerVerticle;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AsyncResult;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.WorkerExecutor;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.eventbus.Message;
import io.vertx.core.json.JsonObject;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * One prefill instance: takes {@link PrefillRequest}s on its event-bus address, prefills them
 * in batches on its engine thread, leases the KV and serves it to decode instances over its
 * KV transfer server.
 */
public final class PrefillVerticle extends WorkerVerticle {

  private static final Logger LOG = LoggerFactory.getLogger(PrefillVerticle.class);

  /**
   * Threads that tokenize prompts, off the event loop: tokenizing a long prompt takes
   * milliseconds to seconds, and the event loop must keep answering heartbeats and cancels.
   */
  private static final int TOKENIZER_THREADS = 2;

  private final Engine engine;
  private final PrefillOptions options;
  private final PromptLimits limits;
  /** Prompts being tokenized: they count against {@code prefill.max-waiting} with the queue. */
  private final AtomicInteger tokenizing = new AtomicInteger();
  private WorkerExecutor tokenizers;
  private LeaseTable leases;
  private PrefillScheduler scheduler;
  private KvTransferServer kvServer;
  private Counter prefilled;
  private Counter cachedPromptTokens;

  public PrefillVerticle(Engine engine, PrefillOptions options, PrometheusMeterRegistry metrics) {
    super(Addresses.prefill(options.instanceId()), Addresses.prefillControl(options.instanceId()),
        new StatusServer(options.host(), options.httpPort(), metrics));
    this.engine = engine;
    this.options = options;
    this.limits = new PromptLimits(engine.info(), engine.tokenizer());
  }

  @Override
  protected Future<?> startService() {
    PrefillScheduler[] holder = new PrefillScheduler[1];
    leases = new LeaseTable(vertx, engine, options.leaseMillis(), options.kv().auth(),
        () -> holder[0].wake());
    scheduler = new PrefillScheduler(engine, leases, options.maxBatchTokens(), options.maxWaiting());
    holder[0] = scheduler;
    scheduler.start();
    tokenizers = vertx.createSharedWorkerExecutor("duet-tokenizer-" + options.instanceId(),
        TOKENIZER_THREADS);
    EngineMetrics.bind(engine, metrics());
    Gauge.builder("duet_prefill_waiting", scheduler, PrefillScheduler::waiting)
        .register(metrics());
    Gauge.builder("duet_kv_leases", leases, LeaseTable::size).register(metrics());
    prefilled = Counter.builder("duet_prefill_prompts_total")
        .description("prompts prefilled and answered with their KV lease").register(metrics());
    cachedPromptTokens = Counter.builder("duet_prefill_cached_prompt_tokens_total")
        .description("prompt tokens of those prompts found in the prefix cache, not computed")
        .register(metrics());
    kvServer = new KvTransferServer(vertx, leases, metrics());
    return kvServer.listen(options.host(), options.kvPort(),
        KvTransferServer.Settings.of(options.kvStallMillis(), options.kv()));
  }

  @Override
  protected String readyMessage() {
    return String.format("prefill %s ready: KV on %s:%d, status on port %d, model %s (%s)",
        options.instanceId(), options.host(), kvServer.actualPort(), statusPort(),
        options.modelName(), engine.layout().fingerprint());
  }

  /** Nothing queued or being prefilled, and no KV leased or being pulled. */
  @Override
  protected boolean isIdle() {
    return !scheduler.hasWork() && !leases.holdsBlocks();
  }

  @Override
  protected Future<?> stopService() {
    tokenizers.close();
    scheduler.close();
    leases.releaseAll();
    return kvServer.close();
  }

  @Override
  public InstanceInfo info() {
    var kv = engine.kvStats();
    return new InstanceInfo(options.instanceId(), Role.PREFILL, 0, 1, options.host(), statusPort(),
        kvServer.actualPort(), options.modelName(), engine.layout().fingerprint(),
        engine.info().chatTemplate(), options.maxBatchTokens(), new InstanceInfo.Load(scheduler.running(), scheduler.waiting(),
            scheduler.inFlightTokens(), kv.usedBlocks(), kv.totalBlocks()),
        System.currentTimeMillis()).withEngine(engine.info().architecture())
        .withCapabilities(capabilities());
  }

  /**
   * Everything this build can do, but streaming the KV while it is computed when the engine
   * drafts: the drafting module's KV layer is computed after the pass, so it is served whole.
   */
  private Set<String> capabilities() {
    return engine.draftTokens() > 0 ? Set.of(InstanceInfo.FIRST_TOKEN_FROM_PREFILL)
        : InstanceInfo.ALL_CAPABILITIES;
  }

  @Override
  protected void handleRequest(Message<JsonObject> message) {
    PrefillRequest request;
    SamplingParams params;
    try {
      request = PrefillRequest.fromJson(message.body());
      params = Sampling.toParams(request.sampling());
    } catch (IllegalArgumentException | NullPointerException | ClassCastException e) {
      message.fail(Failure.BAD_REQUEST.code(), Failure.BAD_REQUEST.message(
          "bad prefill request: " + e.getMessage()));
      return;
    }
    int askedTokens = request.sampling().maxTokensAsked() ? params.maxTokens() : 0;
    // Where the result goes: the request itself, or, when the KV is streamed, the requester's
    // answer to the PrefillStarted (see PrefillRequest#streamKv).
    Promise<Message<JsonObject>> answer = Promise.promise();
    boolean streamed = request.streamKv() && request.firstTokenFromPrefill();
    boolean[] offered = new boolean[1];
    if (!streamed) {
      answer.complete(message);
    }
    prompt(request, askedTokens)
        .compose(prompt -> {
          limits.checkTokens(prompt.length, askedTokens);
          Promise<PrefillScheduler.Outcome> promise = Promise.promise();
          scheduler.enqueue(new PrefillScheduler.Job(request.requestId(), prompt, params,
              request.firstTokenFromPrefill(), promise, vertx.getOrCreateContext(),
              streamed ? (transferId, pullKey) -> {
                offered[0] = true;
                started(message, request.requestId(), prompt.length, transferId, pullKey,
                    answer);
              } : null));
          return promise.future();
        })
        .onComplete(result -> {
          if (!offered[0]) {
            // a streamed request that failed before its lease was taken is answered directly
            answer.tryComplete(message);
          }
          answer.future().onSuccess(to -> answer(to, request.requestId(), result));
        });
  }

  /**
   * Tells the requester that the prompt's KV can be pulled as it is computed, and completes
   * {@code answer} with the requester's reply, which the result then answers. A requester that
   * does not reply (it failed it, or it timed out) gave the request up: it is cancelled.
   */
  private void started(Message<JsonObject> message, String requestId, int promptTokens,
      String transferId, String pullKey, Promise<Message<JsonObject>> answer) {
    int blockSize = engine.options().blockSize();
    KvHandle handle = new KvHandle(options.instanceId(), options.host(), kvServer.actualPort(),
        transferId, (promptTokens + blockSize - 1) / blockSize, promptTokens,
        engine.layout().fingerprint(),
        // its expiry starts when the KV is computed: not before this
        System.currentTimeMillis() + options.leaseMillis(), pullKey);
    message.<JsonObject>replyAndRequest(new PrefillStarted(requestId, handle).toJson(),
            new DeliveryOptions().setSendTimeout(options.leaseMillis()))
        .onComplete(reply -> {
          if (reply.succeeded()) {
            answer.tryComplete(reply.result());
          } else {
            LOG.info("request {}: the requester did not take the streamed KV ({}); cancelling",
                requestId, reply.cause().getMessage());
            scheduler.cancel(requestId);
            leases.releaseRequest(requestId);
            answer.tryFail(reply.cause());
          }
        });
  }

  private void answer(Message<JsonObject> to, String requestId,
      AsyncResult<PrefillScheduler.Outcome> result) {
    MDC.put("requestId", requestId);
    try {
      if (result.succeeded()) {
        prefilled.increment();
        cachedPromptTokens.increment(result.result().cachedPromptTokens());
        to.reply(toResult(requestId, result.result()).toJson());
      } else {
        if (!(result.cause() instanceof ServiceException)) {
          LOG.error("prefill failed", result.cause());
        }
        ServiceException.failReply(to, result.cause());
      }
    } finally {
      MDC.remove("requestId");
    }
  }

  /**
   * The prompt's tokens: the request's own, or its text tokenized on a worker thread once the
   * text's length shows it may fit. A tokenizing prompt counts as waiting.
   */
  private Future<int[]> prompt(PrefillRequest request, int askedTokens) {
    if (request.promptTokens().length > 0) {
      return Future.succeededFuture(request.promptTokens());
    }
    Tokenizer tokenizer = engine.tokenizer();
    if (tokenizer == null) {
      return Future.failedFuture(new ServiceException(Failure.BAD_REQUEST,
          "this instance has no tokenizer; send token ids"));
    }
    String text = request.prompt() == null ? "" : request.prompt();
    try {
      limits.checkText(text, askedTokens);
    } catch (ServiceException e) {
      return Future.failedFuture(e);
    }
    if (tokenizing.incrementAndGet() + scheduler.waiting() > options.maxWaiting()) {
      tokenizing.decrementAndGet();
      return Future.failedFuture(new ServiceException(Failure.OVERLOADED,
          options.maxWaiting() + " prompts are already waiting for prefill"));
    }
    return tokenizers.<int[]>executeBlocking(() -> encode(tokenizer, text), false)
        .onComplete(done -> tokenizing.decrementAndGet());
  }

  private static int[] encode(Tokenizer tokenizer, String text) {
    try {
      return tokenizer.encode(text, true);
    } catch (IllegalArgumentException e) {
      throw new ServiceException(Failure.BAD_REQUEST, e.getMessage());
    }
  }

  private PrefillResult toResult(String requestId, PrefillScheduler.Outcome outcome) {
    KvHandle handle = outcome.transferId() == null ? null
        : new KvHandle(options.instanceId(), options.host(), kvServer.actualPort(),
            outcome.transferId(), outcome.blockCount(), outcome.promptTokens(),
            engine.layout().fingerprint(), leases.expiresAt(outcome.transferId()),
            leases.pullKey(outcome.transferId()));
    FinishReason finish = outcome.first().finish();
    return new PrefillResult(requestId, outcome.firstToken(), outcome.samplerState(),
        outcome.promptTokens(), outcome.cachedPromptTokens(), handle, outcome.queueMicros(),
        outcome.prefillMicros(), outcome.first().text(),
        finish == null ? null : finish.wireName());
  }

  @Override
  protected void handleControl(Message<JsonObject> message) {
    Cancel cancel;
    try {
      cancel = Cancel.fromJson(message.body());
    } catch (IllegalArgumentException | NullPointerException | ClassCastException e) {
      LOG.warn("ignoring bad control message: {}", e.getMessage());
      return;
    }
    if (cancel.requestId() != null) {
      scheduler.cancel(cancel.requestId());
      leases.releaseRequest(cancel.requestId());
    }
    if (cancel.transferId() != null) {
      leases.release(cancel.transferId());
    }
  }
}
