package io.duet.proxy.impl;

import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.TtftStages;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.RoutingContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * One completion from request to answer: starts the job on the backend and turns its decode
 * events into an OpenAI response, whole or as server-sent events.
 *
 * <p>Everything runs on the request's event-loop context. The HTTP status is decided by the first
 * event: a failure before it is a plain HTTP error; once the stream's 200 header went out, a
 * failure becomes a {@code data: {"error":...}} event followed by {@code data: [DONE]}. When the
 * response's write queue fills up the decode stream is paused until it drains, and a client that
 * goes away cancels the job. The client going away is seen through
 * {@link RoutingContext#addEndHandler} failing: vertx-web owns the response's close, exception and
 * end handlers (setting {@code response.closeHandler} here would silently replace its own).
 */
final class CompletionExchange {

  private static final Logger LOG = LoggerFactory.getLogger(CompletionExchange.class);
  private static final String DONE_EVENT = "data: [DONE]\n\n";

  private final RoutingContext ctx;
  private final HttpServerResponse response;
  private final ParsedRequest request;
  private final String requestId;
  private final long arrivalNanos;
  private final OpenAiFormat format;
  private final ProxyMetrics metrics;
  private final boolean chat;

  private CompletionStream stream;
  private boolean headersSent;
  private boolean done;
  private boolean paused;
  private long firstTokenNanos;
  private int promptTokens;
  private int completionTokens;
  private int events;
  private final StringBuilder text = new StringBuilder();

  CompletionExchange(RoutingContext ctx, ParsedRequest request, String requestId,
      long arrivalNanos, long createdSeconds, ProxyMetrics metrics) {
    this.ctx = ctx;
    this.response = ctx.response();
    this.request = request;
    this.requestId = requestId;
    this.arrivalNanos = arrivalNanos;
    this.format = new OpenAiFormat(requestId, createdSeconds, request.model());
    this.metrics = metrics;
    this.chat = request.kind() == ParsedRequest.Kind.CHAT;
  }

  void start(CompletionBackend backend) {
    if (response.closed()) {
      done = true;
      ctx.put(OpenAiApiImpl.STATUS_KEY, 499);
      log(499, "client went away before the job started", null);
      return;
    }
    metrics.started();
    ctx.addEndHandler(ended -> {
      if (ended.failed()) {
        clientGone();
      }
    });
    try {
      stream = backend.start(new CompletionJob(requestId, request.model(), request.prompt(),
          request.sampling()));
    } catch (RuntimeException e) {
      fail(e);
      return;
    }
    stream.exceptionHandler(this::fail);
    stream.endHandler(v -> {
      if (!done) {
        fail(new CompletionException(Failure.INTERNAL,
            "the decode stream ended before its last event"));
      }
    });
    stream.handler(this::onEvent);
  }

  private void onEvent(DecodeEvent event) {
    if (done) {
      return;
    }
    events++;
    String delta = event.text() == null ? "" : event.text();
    if (firstTokenNanos == 0 && (!delta.isEmpty() || event.tokens() > 0)) {
      firstTokenNanos = System.nanoTime();
      metrics.ttft(firstTokenNanos - arrivalNanos);
      metrics.ttftStages(stream.ttftStages());
    }
    promptTokens = event.promptTokens();
    completionTokens = event.completionTokens();
    if (event.failure() != null) {
      fail(new CompletionException(Failure.parse(event.failure()),
          event.error() != null ? event.error() : "the decode failed"));
      return;
    }
    if (request.stream()) {
      streamEvent(delta, event.finishReason());
    } else {
      text.append(delta);
    }
    if (event.isLast()) {
      succeed(event.finishReason());
    }
  }

  private void streamEvent(String delta, String finishReason) {
    if (!headersSent) {
      beginStream();
    }
    if (chat) {
      if (!delta.isEmpty()) {
        writeChunk(format.chatChunk(new JsonObject().put("content", delta), null));
      }
      if (finishReason != null) {
        writeChunk(format.chatChunk(new JsonObject(), finishReason));
      }
    } else if (!delta.isEmpty() || finishReason != null) {
      writeChunk(format.completionChunk(delta, finishReason));
    }
  }

  private void beginStream() {
    headersSent = true;
    response.setStatusCode(200).setChunked(true)
        .putHeader(HttpHeaders.CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .putHeader(HttpHeaders.CACHE_CONTROL, "no-cache");
    if (chat) {
      writeChunk(format.chatChunk(new JsonObject().put("role", "assistant").put("content", ""),
          null));
    } else if (request.echo()) {
      writeChunk(format.completionChunk(request.prompt(), null));
    }
  }

  private void writeChunk(JsonObject chunk) {
    if (request.includeUsage()) {
      chunk.put("usage", request.continuousUsage()
          ? OpenAiFormat.usage(promptTokens, completionTokens) : null);
    }
    writeEvent("data: " + chunk.encode() + "\n\n");
  }

  private void writeEvent(String event) {
    response.write(event);
    if (!paused && !done && response.writeQueueFull()) {
      paused = true;
      stream.pause();
      response.drainHandler(v -> {
        paused = false;
        if (!done) {
          stream.resume();
        }
      });
    }
  }

  private void succeed(String finishReason) {
    done = true;
    ctx.put(OpenAiApiImpl.STATUS_KEY, 200);
    JsonObject usage = OpenAiFormat.usage(promptTokens, completionTokens);
    if (request.stream()) {
      if (request.includeUsage()) {
        writeEvent("data: " + format.usageChunk(chat, usage).encode() + "\n\n");
      }
      response.end(DONE_EVENT);
    } else {
      JsonObject body = chat ? format.chatCompletion(text.toString(), finishReason, usage)
          : format.completion(request.echo() ? request.prompt() + text : text.toString(),
              finishReason, usage);
      response.setStatusCode(200).putHeader(HttpHeaders.CONTENT_TYPE, "application/json")
          .end(body.encode());
    }
    long now = System.nanoTime();
    metrics.e2e(now - arrivalNanos);
    if (firstTokenNanos != 0 && completionTokens > 1) {
      metrics.tpot((now - firstTokenNanos) / (completionTokens - 1));
    }
    metrics.finished();
    log(200, finishReason, null);
  }

  private void fail(Throwable error) {
    if (done) {
      return;
    }
    done = true;
    ApiError api = ApiError.from(error);
    ctx.put(OpenAiApiImpl.STATUS_KEY, api.status());
    if (headersSent) {
      writeEvent("data: " + api.toJson().encode() + "\n\n");
      response.end(DONE_EVENT);
    } else {
      OpenAiApiImpl.sendError(ctx, api);
    }
    metrics.finished();
    log(api.status(), null, api);
  }

  private void clientGone() {
    if (done) {
      return;
    }
    done = true;
    ctx.put(OpenAiApiImpl.STATUS_KEY, 499);
    if (stream != null) {
      stream.cancel();
    }
    metrics.finished();
    log(499, "client went away", null);
  }

  private void log(int status, String outcome, ApiError error) {
    MDC.put("requestId", requestId);
    try {
      long now = System.nanoTime();
      long ttftMs = firstTokenNanos == 0 ? -1 : (firstTokenNanos - arrivalNanos) / 1_000_000;
      long durationMs = (now - arrivalNanos) / 1_000_000;
      TtftStages stages = stream == null ? TtftStages.NONE : stream.ttftStages();
      if (error == null) {
        LOG.info("{} {} status={} finish={} stream={} prompt_tokens={} completion_tokens={} "
            + "ttft_ms={} {} duration_ms={}", request.kind().path, request.model(), status,
            outcome, request.stream(), promptTokens, completionTokens, ttftMs,
            stagesText(stages), durationMs);
      } else {
        LOG.info("{} {} status={} error_type={} error=\"{}\" stream={} events={} prompt_tokens={} "
            + "completion_tokens={} ttft_ms={} {} duration_ms={}", request.kind().path,
            request.model(), status, error.type(), error.getMessage(), request.stream(), events,
            promptTokens, completionTokens, ttftMs, stagesText(stages), durationMs);
      }
    } finally {
      MDC.remove("requestId");
    }
  }

  /** The TTFT stages for the log line, -1 where not reported. */
  private static String stagesText(TtftStages stages) {
    return "prefill_queue_ms=" + millis(stages.prefillQueueMicros()) + " prefill_ms="
        + millis(stages.prefillMicros()) + " decode_queue_ms="
        + millis(stages.decodeQueueMicros()) + " kv_pull_ms=" + millis(stages.kvPullMicros());
  }

  private static long millis(long micros) {
    return micros < 0 ? -1 : micros / 1000;
  }
}
