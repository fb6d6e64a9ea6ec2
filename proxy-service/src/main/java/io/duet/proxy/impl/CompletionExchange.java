package io.duet.proxy.impl;

import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.duet.contract.SamplingSpec;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.RoutingContext;
import java.util.ArrayList;
import java.util.List;

/**
 * One completion from request to answer: starts a job on the backend for each of its choices
 * and turns their decode events into an OpenAI response, whole or as server-sent events (the
 * chunks of several choices interleave, each naming its index; the usage is their sum, each
 * prompt counted once).
 *
 * <p>Everything runs on the request's event-loop context. The HTTP status is decided by the first
 * event: a failure before it is a plain HTTP error; once the stream's 200 header went out, a
 * failure becomes a {@code data: {"error":...}} event followed by {@code data: [DONE]}. A failure
 * of one prompt fails the request and cancels the others. When the response's write queue fills
 * up the decode streams are paused until it drains, and a client that goes away cancels the jobs.
 * The client going away is seen through {@link RoutingContext#addEndHandler} failing: vertx-web
 * owns the response's close, exception and end handlers (setting {@code response.closeHandler}
 * here would silently replace its own). Metrics and the log lines are the
 * {@link CompletionTrace}s', one per prompt.
 */
final class CompletionExchange {

  private static final String DONE_EVENT = "data: [DONE]\n\n";

  /** One choice's job (a prompt, and a seed of its own) and what it has produced. */
  private final class Choice {
    final int index;
    final ParsedRequest.Prompt prompt;
    /** Whether it is its prompt's first choice, which counts the prompt's tokens in the usage. */
    final boolean firstOfItsPrompt;
    final SamplingSpec sampling;
    final String jobId;
    final CompletionTrace trace;
    final StringBuilder text = new StringBuilder();
    CompletionStream stream;
    boolean started;
    String finishReason;

    Choice(int index, int ofItsPrompt, ParsedRequest.Prompt prompt, long arrivalNanos,
        ProxyMetrics metrics) {
      this.index = index;
      this.prompt = prompt;
      this.firstOfItsPrompt = ofItsPrompt == 0;
      // The n choices of a prompt sample differently, and reproducibly for a given seed.
      this.sampling = request.sampling().withSeed(request.sampling().seed() + ofItsPrompt);
      // The backend names a job's work by its id: each choice's job needs one of its own.
      this.jobId = choiceCount() == 1 ? requestId : requestId + "-" + index;
      this.trace = new CompletionTrace(metrics, jobId, request.kind().path, request.model(),
          request.stream(), arrivalNanos);
    }

    CompletionJob job() {
      return new CompletionJob(jobId, request.model(), prompt.text(), prompt.tokens(), sampling,
          !request.stream());
    }
  }

  private final RoutingContext ctx;
  private final HttpServerResponse response;
  private final ParsedRequest request;
  private final String requestId;
  private final OpenAiFormat format;
  private final boolean chat;
  private final List<Choice> choices = new ArrayList<>();

  private boolean headersSent;
  private boolean done;
  private boolean paused;
  private int finished;

  CompletionExchange(RoutingContext ctx, ParsedRequest request, String requestId,
      long arrivalNanos, long createdSeconds, ProxyMetrics metrics) {
    this.ctx = ctx;
    this.response = ctx.response();
    this.request = request;
    this.requestId = requestId;
    this.format = new OpenAiFormat(requestId, createdSeconds, request.model());
    this.chat = request.kind() == ParsedRequest.Kind.CHAT;
    // OpenAI's order: the n choices of the first prompt, then those of the second...
    for (int p = 0; p < request.prompts().size(); p++) {
      for (int k = 0; k < request.n(); k++) {
        choices.add(new Choice(p * request.n() + k, k, request.prompts().get(p), arrivalNanos,
            metrics));
      }
    }
  }

  private int choiceCount() {
    return request.prompts().size() * request.n();
  }

  void start(CompletionBackend backend) {
    if (response.closed()) {
      done = true;
      ctx.put(OpenAiApiImpl.STATUS_KEY, 499);
      choices.forEach(c -> c.trace.abandoned("client went away before the job started"));
      return;
    }
    ctx.addEndHandler(ended -> {
      if (ended.failed()) {
        clientGone();
      }
    });
    for (Choice choice : choices) {
      if (done) {
        return;
      }
      choice.stream = choice.trace.start(backend, choice.job(), this::fail);
      if (choice.stream != null) {
        choice.stream.handler(event -> onEvent(choice, event));
      }
    }
  }

  private void onEvent(Choice choice, DecodeEvent event) {
    if (done) {
      return;
    }
    choice.trace.event(event);
    String delta = event.text() == null ? "" : event.text();
    if (event.failure() != null) {
      fail(new CompletionException(Failure.parse(event.failure()),
          event.error() != null ? event.error() : "the decode failed"));
      return;
    }
    if (request.stream()) {
      streamEvent(choice, delta, event.finishReason());
    } else {
      choice.text.append(delta);
    }
    if (event.isLast()) {
      choice.finishReason = event.finishReason();
      if (++finished == choices.size()) {
        succeed();
      }
    }
  }

  private void streamEvent(Choice choice, String delta, String finishReason) {
    if (!headersSent) {
      beginStream();
    }
    if (!choice.started) {
      choice.started = true;
      if (chat) {
        writeChunk(format.chatChunk(choice.index,
            new JsonObject().put("role", "assistant").put("content", ""), null), choice, 0);
      } else if (request.echo()) {
        writeChunk(format.completionChunk(choice.index, choice.prompt.text(), null), choice, 0);
      }
    }
    int completionTokens = choice.trace.completionTokens();
    if (chat) {
      if (!delta.isEmpty()) {
        writeChunk(format.chatChunk(choice.index, new JsonObject().put("content", delta), null),
            choice, completionTokens);
      }
      if (finishReason != null) {
        writeChunk(format.chatChunk(choice.index, new JsonObject(), finishReason), choice,
            completionTokens);
      }
    } else if (!delta.isEmpty() || finishReason != null) {
      writeChunk(format.completionChunk(choice.index, delta, finishReason), choice,
          completionTokens);
    }
  }

  private void beginStream() {
    headersSent = true;
    response.setStatusCode(200).setChunked(true)
        .putHeader(HttpHeaders.CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .putHeader(HttpHeaders.CACHE_CONTROL, "no-cache");
  }

  /** Writes a chunk of {@code choice}, with its usage so far when the client asked for it. */
  private void writeChunk(JsonObject chunk, Choice choice, int completionTokens) {
    if (request.includeUsage()) {
      chunk.put("usage", request.continuousUsage()
          ? OpenAiFormat.usage(choice.trace.promptTokens(), completionTokens) : null);
    }
    writeEvent("data: " + chunk.encode() + "\n\n");
  }

  private void writeEvent(String event) {
    response.write(event);
    if (!paused && !done && response.writeQueueFull()) {
      paused = true;
      choices.forEach(c -> c.stream.pause());
      response.drainHandler(v -> {
        paused = false;
        if (!done) {
          choices.forEach(c -> c.stream.resume());
        }
      });
    }
  }

  private void succeed() {
    done = true;
    ctx.put(OpenAiApiImpl.STATUS_KEY, 200);
    int promptTokens = 0;
    int completionTokens = 0;
    for (Choice choice : choices) {
      promptTokens += choice.firstOfItsPrompt ? choice.trace.promptTokens() : 0;
      completionTokens += choice.trace.completionTokens();
    }
    JsonObject usage = OpenAiFormat.usage(promptTokens, completionTokens);
    if (request.stream()) {
      if (request.includeUsage()) {
        writeEvent("data: " + format.usageChunk(chat, usage).encode() + "\n\n");
      }
      response.end(DONE_EVENT);
    } else {
      List<OpenAiFormat.Choice> whole = choices.stream().map(c -> new OpenAiFormat.Choice(
          c.index, request.echo() ? c.prompt.text() + c.text : c.text.toString(),
          c.finishReason)).toList();
      JsonObject body = chat ? format.chatCompletion(whole, usage)
          : format.completion(whole, usage);
      response.setStatusCode(200).putHeader(HttpHeaders.CONTENT_TYPE, "application/json")
          .end(body.encode());
    }
    choices.forEach(c -> c.trace.succeeded(c.finishReason));
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
    for (Choice choice : choices) {
      if (choice.stream != null) {
        choice.stream.cancel();
      }
      choice.trace.failed(api);
    }
  }

  private void clientGone() {
    if (done) {
      return;
    }
    done = true;
    ctx.put(OpenAiApiImpl.STATUS_KEY, 499);
    for (Choice choice : choices) {
      if (choice.stream != null) {
        choice.stream.cancel();
      }
      choice.trace.abandoned("client went away");
    }
  }
}
