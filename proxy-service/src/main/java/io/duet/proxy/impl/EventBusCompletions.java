package io.duet.proxy.impl;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.CompletionAccepted;
import io.duet.contract.CompletionRequest;
import io.duet.contract.Failure;
import io.duet.contract.StreamCredit;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.ProxyOptions;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Completions for event-bus clients on one event loop of a proxy, over that event loop's
 * {@link CompletionBackend}: it consumes {@link Addresses#COMPLETIONS}, which every event loop of
 * every proxy consumes (the event bus hands each request to one of them), checks each request as
 * the HTTP API would (the API key first, then {@link EventBusRequests}), answers with a
 * {@link CompletionAccepted} naming its control address and streams the request's events to the
 * client ({@link EventBusExchange}). The control address takes the clients' credits and cancels,
 * so that they reach the event loop that runs their request. Requests count in the same
 * {@link ProxyMetrics} as HTTP ones, under the endpoint {@value #ENDPOINT}. The message flow is
 * described on {@link CompletionRequest}. Event-loop confined: open it on the backend's context.
 */
public final class EventBusCompletions {

  /** The {@code endpoint} label of event-bus requests in {@code duet_requests_total}. */
  public static final String ENDPOINT = "eventbus";

  private static final Logger LOG = LoggerFactory.getLogger(EventBusCompletions.class);

  private final Vertx vertx;
  private final ProxyMetrics metrics;
  private final ApiKey apiKey;
  private final EventBusRequests requests;
  private final long stallTimeoutMillis;
  private final CompletionBackend backend;
  private final String controlAddress;
  private final Map<String, EventBusExchange> running = new HashMap<>();
  private MessageConsumer<Object> requestConsumer;
  private MessageConsumer<Object> controlConsumer;
  /** Completed once no request runs, after {@link #drain} began; null before. */
  private Promise<Void> idle;

  /**
   * @param metrics the proxy's metrics, shared with its HTTP API
   * @param controlAddress this event loop's {@link Addresses#proxyControl}
   */
  public EventBusCompletions(Vertx vertx, ProxyOptions options, ProxyMetrics metrics,
      CompletionBackend backend, String controlAddress) {
    this.vertx = Objects.requireNonNull(vertx, "vertx");
    this.metrics = Objects.requireNonNull(metrics, "metrics");
    this.apiKey = new ApiKey(options.getApiKey());
    this.requests = new EventBusRequests(new CompletionRules(options));
    this.stallTimeoutMillis = options.getEventBusStallTimeoutMillis();
    this.backend = Objects.requireNonNull(backend, "backend");
    this.controlAddress = Objects.requireNonNull(controlAddress, "controlAddress");
  }

  /** Registers both addresses; completes once the cluster can route to them. */
  public Future<Void> open() {
    controlConsumer = vertx.eventBus().consumer(controlAddress, this::onControl);
    requestConsumer = vertx.eventBus().consumer(Addresses.COMPLETIONS, this::onRequest);
    return Future.all(controlConsumer.completion(), requestConsumer.completion()).mapEmpty();
  }

  /**
   * Stops taking requests, then completes once those running have ended or {@code timeoutMillis}
   * have passed, whichever comes first; the control address stays open meanwhile, for the
   * credits and cancels of the running ones. {@link #close} then cancels what still runs.
   */
  public Future<Void> drain(long timeoutMillis) {
    if (requestConsumer == null) {
      return Future.succeededFuture();
    }
    idle = Promise.promise();
    completeIfIdle();
    long timer = vertx.setTimer(Math.max(1, timeoutMillis), t -> idle.tryComplete());
    return requestConsumer.unregister()
        .compose(v -> idle.future())
        .onComplete(done -> vertx.cancelTimer(timer));
  }

  private void completeIfIdle() {
    if (idle != null && running.isEmpty()) {
      idle.tryComplete();
    }
  }

  /**
   * Stops taking requests and cancels those still running (their clients are told); harmless
   * when it was never opened.
   */
  public Future<Void> close() {
    new ArrayList<>(running.values()).forEach(EventBusExchange::close);
    if (requestConsumer == null) {
      return Future.succeededFuture();
    }
    return Future.all(requestConsumer.unregister(), controlConsumer.unregister()).mapEmpty();
  }

  private void onRequest(Message<Object> message) {
    long arrivalNanos = System.nanoTime();
    if (!(message.body() instanceof JsonObject json)) {
      refuse(message, Failure.BAD_REQUEST, 400, "a completion request is a JSON object");
      return;
    }
    // Before the rest, as over HTTP: a client without the key learns nothing about its request.
    if (apiKey.required() && !apiKey.matches(json.getValue("apiKey") instanceof String key
        ? key : null)) {
      refuse(message, Failure.UNAUTHORIZED, 401, json.getValue("apiKey") == null
          ? "You didn't provide an API key: this proxy requires one in the request's apiKey."
          : "Incorrect API key provided.");
      return;
    }
    CompletionRequest request;
    CompletionJob job;
    try {
      request = CompletionRequest.fromJson(json);
      job = requests.job(request, backend);
      CompletionRules.requireServed(backend, job.model());
      backend.checkCapacity(job.model());
    } catch (ApiError e) {
      refuse(message, Failure.BAD_REQUEST, e.status(),
          e.param() == null ? e.getMessage() : e.param() + ": " + e.getMessage());
      return;
    } catch (CompletionException e) {
      refuse(message, e.failure(), ApiError.of(e.failure(), e.getMessage()).status(),
          e.getMessage());
      return;
    } catch (IllegalArgumentException | NullPointerException | ClassCastException e) {
      // another contract version, or a field of the wrong type
      refuse(message, Failure.BAD_REQUEST, 400, "unreadable completion request: "
          + e.getMessage());
      return;
    }
    if (running.containsKey(job.requestId())) {
      refuse(message, Failure.BAD_REQUEST, 400, "request id " + job.requestId()
          + " is in use");
      return;
    }
    message.reply(new CompletionAccepted(job.requestId(), controlAddress).toJson());
    EventBusExchange exchange = new EventBusExchange(vertx, job, request.streamAddress(),
        request.initialCredits(), new CompletionTrace(metrics, job.requestId(), ENDPOINT,
            job.model(), true, arrivalNanos), stallTimeoutMillis, status -> {
          running.remove(job.requestId());
          metrics.request(ENDPOINT, status);
          completeIfIdle();
        });
    running.put(job.requestId(), exchange);
    exchange.start(backend);
  }

  /**
   * Answers a request with a failure before any job started, counts it and logs it.
   *
   * @param status the HTTP status the same refusal has over HTTP, for the metrics
   */
  private void refuse(Message<Object> message, Failure failure, int status, String text) {
    message.fail(failure.code(), failure.message(text));
    metrics.request(ENDPOINT, status);
    LOG.info("{} rejected status={} failure={} error=\"{}\"", ENDPOINT, status, failure, text);
  }

  private void onControl(Message<Object> message) {
    try {
      JsonObject json = (JsonObject) message.body();
      if (Cancel.isCancel(json)) {
        cancel(message, Cancel.fromJson(json));
      } else {
        StreamCredit credit = StreamCredit.fromJson(json);
        EventBusExchange exchange = running.get(credit.requestId());
        if (exchange != null) {
          exchange.credit(credit.credits());
        }
      }
    } catch (RuntimeException e) {
      LOG.warn("ignoring a bad control message: {}", e.getMessage());
    }
  }

  private void cancel(Message<Object> message, Cancel cancel) {
    EventBusExchange exchange = running.get(cancel.requestId());
    if (exchange == null) {
      message.fail(Failure.BAD_REQUEST.code(), Failure.BAD_REQUEST.message("no request "
          + cancel.requestId() + " is running here; it may have ended"));
      return;
    }
    message.reply(exchange.cancel().toJson());
  }
}
