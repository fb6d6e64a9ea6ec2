package io.duet.proxy.impl;

import io.duet.proxy.CompletionBackend;
import io.duet.proxy.ConfigReload;
import io.duet.proxy.OpenAiApi;
import io.duet.proxy.ProxyOptions;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AsyncResult;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.vertx.core.http.HttpClosedException;
import io.vertx.core.http.HttpConnection;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import io.vertx.ext.web.handler.HttpException;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * {@link OpenAiApi}; see there for the endpoints. One instance serves the routers of every event
 * loop: its own state is immutable but for the metrics, which are thread-safe.
 */
public final class OpenAiApiImpl implements OpenAiApi {

  /** Routing-context key of the status a request is counted with when it is not the HTTP one. */
  static final String STATUS_KEY = "duet.status";
  static final String REQUEST_ID_HEADER = "X-Request-Id";

  private static final Logger LOG = LoggerFactory.getLogger(OpenAiApiImpl.class);
  private static final String ARRIVAL_KEY = "duet.arrivalNanos";
  private static final String CREATED_KEY = "duet.createdSeconds";
  private static final String REQUEST_ID_KEY = "duet.requestId";
  private static final String BODY_TIMER_KEY = "duet.bodyTimer";
  private static final String APPLICATION_JSON = "application/json";
  private static final String PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";
  private static final List<String> ENDPOINTS = List.of("/v1/completions",
      "/v1/chat/completions", "/v1/models");

  private final Vertx vertx;
  private final ProxyOptions options;
  private final PrometheusMeterRegistry registry;
  private final ProxyMetrics metrics;
  private final RequestParser parser;
  private final ApiKey apiKey;
  private final ConfigReload reload;
  private final long createdSeconds = System.currentTimeMillis() / 1000;

  /**
   * @param metrics the metrics of {@code registry}; a proxy's event-bus front end counts in the
   *     same instance
   * @param reload what {@code POST /admin/reload} runs; null for no such endpoint
   */
  public OpenAiApiImpl(Vertx vertx, ProxyOptions options, PrometheusMeterRegistry registry,
      ProxyMetrics metrics, ConfigReload reload) {
    this.vertx = Objects.requireNonNull(vertx, "vertx");
    this.options = Objects.requireNonNull(options, "options");
    this.registry = Objects.requireNonNull(registry, "registry");
    this.metrics = Objects.requireNonNull(metrics, "metrics");
    this.parser = new RequestParser(new CompletionRules(options));
    this.apiKey = new ApiKey(options.getApiKey());
    this.reload = reload;
  }

  @Override
  public Router router(CompletionBackend backend) {
    Objects.requireNonNull(backend, "backend");
    Router r = Router.router(vertx);
    r.route().handler(this::arrival);
    if (apiKey.required()) {
      r.route("/v1/*").handler(this::authenticate);
      r.route("/admin/*").handler(this::authenticate);
    }
    r.post("/v1/*").handler(this::requireJsonBody);
    r.route("/v1/*").handler(this::bodyDeadline);
    r.route("/v1/*").handler(BodyHandler.create(false).setBodyLimit(options.getMaxBodyBytes()));
    r.route("/v1/*").handler(OpenAiApiImpl::bodyArrived);
    r.post("/v1/completions").handler(ctx -> handleCompletion(ctx, backend,
        ParsedRequest.Kind.COMPLETION));
    r.post("/v1/chat/completions").handler(ctx -> handleCompletion(ctx, backend,
        ParsedRequest.Kind.CHAT));
    r.get("/v1/models").handler(ctx -> handleModels(ctx, backend));
    r.getWithRegex("/v1/models/(?<model>.+)").handler(ctx -> handleModel(ctx, backend));
    r.get("/health").handler(ctx -> handleHealth(ctx, backend));
    r.get("/metrics").handler(this::handleMetrics);
    if (reload != null) {
      r.post("/admin/reload").handler(this::handleReload);
    }
    r.route().failureHandler(this::handleFailure);
    r.errorHandler(404, ctx -> sendError(ctx, ApiError.fromStatus(404, ctx.request().method()
        .name(), ctx.request().path(), options.getMaxBodyBytes())));
    r.errorHandler(405, ctx -> sendError(ctx, ApiError.fromStatus(405, ctx.request().method()
        .name(), ctx.request().path(), options.getMaxBodyBytes())));
    return r;
  }

  /** Stamps the arrival time and the request id, and counts {@code /v1/*} requests at their end. */
  private void arrival(RoutingContext ctx) {
    ctx.put(ARRIVAL_KEY, System.nanoTime());
    ctx.put(CREATED_KEY, System.currentTimeMillis() / 1000);
    String path = ctx.normalizedPath();
    ParsedRequest.Kind kind = null;
    if (path.equals(ParsedRequest.Kind.COMPLETION.path)) {
      kind = ParsedRequest.Kind.COMPLETION;
    } else if (path.equals(ParsedRequest.Kind.CHAT.path)) {
      kind = ParsedRequest.Kind.CHAT;
    }
    if (kind != null) {
      String requestId = kind.newRequestId();
      ctx.put(REQUEST_ID_KEY, requestId);
      ctx.response().putHeader(REQUEST_ID_HEADER, requestId);
    }
    if (path.startsWith("/v1/")) {
      String endpoint = ENDPOINTS.contains(path) ? path
          : path.startsWith("/v1/models/") ? "/v1/models/{model}" : "other";
      ctx.addEndHandler(ended -> metrics.request(endpoint, countedStatus(ctx, ended)));
    }
    ctx.next();
  }

  /**
   * Answers 408 and closes the connection when the body has not fully arrived within the body
   * timeout: a client that sends less than its Content-Length, or sends it too slowly, must not
   * hold a connection and a buffer for ever.
   */
  private void bodyDeadline(RoutingContext ctx) {
    long timer = vertx.setTimer(options.getBodyTimeoutMillis(), t -> {
      LOG.info("{} {} from {}: the body did not arrive within {} ms; answering 408",
          ctx.request().method(), ctx.request().path(), ctx.request().remoteAddress(),
          options.getBodyTimeoutMillis());
      HttpConnection connection = ctx.request().connection();
      ctx.response().putHeader(HttpHeaders.CONNECTION, "close");
      ctx.addEndHandler(ended -> connection.close());
      sendError(ctx, new ApiError(408, ApiError.INVALID_REQUEST, "The request body did not "
          + "arrive within " + options.getBodyTimeoutMillis() / 1000 + " s.", null,
          "request_timeout"));
    });
    ctx.put(BODY_TIMER_KEY, timer);
    ctx.addEndHandler(ended -> vertx.cancelTimer(timer));
    ctx.next();
  }

  private static void bodyArrived(RoutingContext ctx) {
    ctx.vertx().cancelTimer(ctx.<Long>get(BODY_TIMER_KEY));
    ctx.next();
  }

  private static int countedStatus(RoutingContext ctx, AsyncResult<Void> ended) {
    Integer status = ctx.get(STATUS_KEY);
    if (status != null) {
      return status;
    }
    return ended.failed() ? 499 : ctx.response().getStatusCode();
  }

  private void authenticate(RoutingContext ctx) {
    String header = ctx.request().getHeader(HttpHeaders.AUTHORIZATION);
    ApiError error = null;
    if (header == null || header.isBlank()) {
      error = new ApiError(401, ApiError.INVALID_REQUEST, "You didn't provide an API key. You need"
          + " to provide your API key in an Authorization header using Bearer auth (i.e."
          + " Authorization: Bearer YOUR_KEY).", null, null);
    } else if (!header.regionMatches(true, 0, "Bearer ", 0, 7)
        || !apiKey.matches(header.substring(7).trim())) {
      error = new ApiError(401, ApiError.INVALID_REQUEST, "Incorrect API key provided.", null,
          "invalid_api_key");
    }
    if (error == null) {
      ctx.next();
    } else {
      ctx.response().putHeader("WWW-Authenticate", "Bearer");
      reject(ctx, error);
    }
  }

  /**
   * Refuses a form or a file upload before its body is read: the API takes JSON only. A body
   * sent without a Content-Type, or with another one, is parsed as JSON (curl's default
   * {@code -d} sends one as a form type).
   */
  private void requireJsonBody(RoutingContext ctx) {
    String type = ctx.request().getHeader(HttpHeaders.CONTENT_TYPE);
    if (type != null && type.regionMatches(true, 0, "multipart/", 0, 10)) {
      reject(ctx, ApiError.unsupportedMediaType(type));
    } else {
      ctx.next();
    }
  }

  @Override
  public void invalidRequest(HttpServerRequest request) {
    Throwable cause = request.decoderResult().cause();
    int status = cause instanceof TooLongHttpLineException ? 414
        : cause instanceof TooLongHttpHeaderException ? 431 : 400;
    ApiError error = ApiError.fromStatus(status, request.method().name(), "", 0);
    LOG.info("invalid HTTP request rejected status={} error=\"{}\"", status,
        cause == null ? "unknown" : cause.getMessage());
    request.response().setStatusCode(status)
        .putHeader(HttpHeaders.CONTENT_TYPE, APPLICATION_JSON)
        .putHeader(HttpHeaders.CONNECTION, "close")
        .end(error.toJson().encode());
  }

  private void handleCompletion(RoutingContext ctx, CompletionBackend backend,
      ParsedRequest.Kind kind) {
    ParsedRequest request;
    try {
      request = parser.parse(kind, RequestParser.json(ctx.body().buffer()), backend);
      CompletionRules.requireServed(backend, request.model());
      backend.checkCapacity(request.model());
    } catch (RuntimeException e) {
      reject(ctx, ApiError.from(e));
      return;
    }
    new CompletionExchange(ctx, request, ctx.get(REQUEST_ID_KEY), ctx.get(ARRIVAL_KEY),
        ctx.get(CREATED_KEY), metrics).start(backend);
  }

  private void handleModels(RoutingContext ctx, CompletionBackend backend) {
    JsonArray data = new JsonArray();
    for (String model : backend.models()) {
      data.add(model(model, backend));
    }
    sendJson(ctx, 200, new JsonObject().put("object", "list").put("data", data));
  }

  private void handleModel(RoutingContext ctx, CompletionBackend backend) {
    String name = ctx.pathParam("model");
    if (backend.models().contains(name)) {
      sendJson(ctx, 200, model(name, backend));
    } else {
      sendError(ctx, ApiError.modelNotFound(name));
    }
  }

  private JsonObject model(String name, CompletionBackend backend) {
    return new JsonObject().put("id", name).put("object", "model").put("created", createdSeconds)
        .put("owned_by", backend.owner(name));
  }

  private void handleHealth(RoutingContext ctx, CompletionBackend backend) {
    String reason;
    try {
      List<String> models = backend.models();
      if (!models.isEmpty()) {
        JsonObject owners = new JsonObject();
        models.forEach(model -> owners.put(model, backend.owner(model)));
        sendJson(ctx, 200, new JsonObject().put("status", "ok").put("models", owners));
        return;
      }
      reason = "no model is served by at least one prefill and one decode instance";
    } catch (RuntimeException e) {
      reason = "the cluster registry cannot be read: " + e.getMessage();
    }
    sendJson(ctx, 503, new JsonObject().put("status", "unavailable").put("reason", reason));
  }

  private void handleMetrics(RoutingContext ctx) {
    ctx.response().putHeader(HttpHeaders.CONTENT_TYPE, PROMETHEUS_TEXT).end(registry.scrape());
  }

  /** 200 with what changed, or 400 with why the configuration was refused. */
  private void handleReload(RoutingContext ctx) {
    Context context = vertx.getOrCreateContext();
    reload.reload("POST /admin/reload").onSuccess(outcome -> context.runOnContext(v ->
        sendJson(ctx, outcome.applied() ? 200 : 400, outcome.toJson())));
  }

  private void handleFailure(RoutingContext ctx) {
    Throwable failure = ctx.failure();
    if (failure instanceof HttpClosedException || ctx.response().closed()) {
      // The client went away while its request was read: nobody to answer, nothing broke.
      ctx.put(STATUS_KEY, 499);
      LOG.info("{} {} abandoned by the client before its body was read", ctx.request().method(),
          ctx.request().path());
      return;
    }
    ApiError error;
    if (failure == null || failure instanceof HttpException) {
      error = ApiError.fromStatus(ctx.statusCode(), ctx.request().method().name(),
          ctx.request().path(), options.getMaxBodyBytes());
    } else {
      error = ApiError.from(failure);
      if (!(failure instanceof ApiError)) {
        LOG.error("Unexpected failure on {} {}", ctx.request().method(), ctx.request().path(),
            failure);
      }
    }
    reject(ctx, error);
  }

  /** Answers a request with an error before any completion started, and logs it. */
  private void reject(RoutingContext ctx, ApiError error) {
    sendError(ctx, error);
    String requestId = ctx.get(REQUEST_ID_KEY);
    if (requestId != null) {
      MDC.put("requestId", requestId);
    }
    try {
      LOG.info("{} {} rejected status={} param={} error=\"{}\"", ctx.request().method(),
          ctx.request().path(), error.status(), error.param(), error.getMessage());
    } finally {
      MDC.remove("requestId");
    }
  }

  /** The one place an {@link ApiError} becomes an HTTP response. */
  static void sendError(RoutingContext ctx, ApiError error) {
    HttpServerResponse response = ctx.response();
    if (response.ended() || response.closed()) {
      return;
    }
    if (response.headWritten()) {
      response.reset();
      return;
    }
    response.setStatusCode(error.status());
    if (error.status() == 499) {
      response.setStatusMessage("Client Closed Request");
    }
    if (error.retryAfterSeconds() > 0) {
      response.putHeader(HttpHeaders.RETRY_AFTER, Integer.toString(error.retryAfterSeconds()));
    }
    response.putHeader(HttpHeaders.CONTENT_TYPE, APPLICATION_JSON).end(error.toJson().encode());
  }

  private static void sendJson(RoutingContext ctx, int status, JsonObject body) {
    ctx.response().setStatusCode(status).putHeader(HttpHeaders.CONTENT_TYPE, APPLICATION_JSON)
        .end(body.encode());
  }
}
