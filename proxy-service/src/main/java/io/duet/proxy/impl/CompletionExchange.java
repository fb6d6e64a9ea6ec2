package io.duet.proxy.impl;

import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.RoutingContext;

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
 * Metrics and the log line are the {@link CompletionTrace}'s.
 */
final class CompletionExchange {

  private static final String DONE_EVENT = "data: [DONE]\n\n";

  private final RoutingContext ctx;
  private final HttpServerResponse response;
  private final ParsedRequest request;
  private final String requestId;
  private final OpenAiFormat format;
  private final CompletionTrace trace;
  private final boolean chat;

  private CompletionStream stream;
  private boolean headersSent;
  private boolean done;
  private boolean paused;
  private final StringBuilder text = new StringBuilder();

  CompletionExchange(RoutingContext ctx, ParsedRequest request, String requestId,
      long arrivalNanos, long createdSeconds, ProxyMetrics metrics) {
    this.ctx = ctx;
    this.response = ctx.response();
    this.request = request;
    this.requestId = requestId;
    this.format = new OpenAiFormat(requestId, createdSeconds, request.model());
    this.trace = new CompletionTrace(metrics, requestId, request.kind().path, request.model(),
        request.stream(), arrivalNanos);
    this.chat = request.kind() == ParsedRequest.Kind.CHAT;
  }

  void start(CompletionBackend backend) {
    if (response.closed()) {
      done = true;
      ctx.put(OpenAiApiImpl.STATUS_KEY, 499);
      trace.abandoned("client went away before the job started");
      return;
    }
    ctx.addEndHandler(ended -> {
      if (ended.failed()) {
        clientGone();
      }
    });
    stream = trace.start(backend, new CompletionJob(requestId, request.model(),
        request.prompt(), request.sampling()), this::fail);
    if (stream != null) {
      stream.handler(this::onEvent);
    }
  }

  private void onEvent(DecodeEvent event) {
    if (done) {
      return;
    }
    trace.event(event);
    String delta = event.text() == null ? "" : event.text();
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
          ? OpenAiFormat.usage(trace.promptTokens(), trace.completionTokens()) : null);
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
    JsonObject usage = OpenAiFormat.usage(trace.promptTokens(), trace.completionTokens());
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
    trace.succeeded(finishReason);
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
    trace.failed(api);
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
    trace.abandoned("client went away");
  }
}
