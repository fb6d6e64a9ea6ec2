package io.duet.proxy.impl;

import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.TtftStages;
import io.vertx.core.Handler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * What every front end does alike with one completion: starting its job on the backend, and the
 * bookkeeping: its count among the requests in flight, its time to first token (and the stages
 * its instances reported), time per output token and end-to-end latency in
 * {@link ProxyMetrics}, and its log line when it ends. Confined to the request's event loop;
 * exactly one of {@link #succeeded}, {@link #failed} and {@link #abandoned} ends it.
 */
final class CompletionTrace {

  private static final Logger LOG = LoggerFactory.getLogger(CompletionTrace.class);

  private final ProxyMetrics metrics;
  private final String requestId;
  private final String endpoint;
  private final String model;
  private final boolean stream;
  private final long arrivalNanos;
  private CompletionStream source;
  private boolean inFlight;
  private long firstTokenNanos;
  private int promptTokens;
  private int completionTokens;
  private int events;
  private boolean lastEvent;

  /**
   * @param endpoint where the request came in, first in its log line (an HTTP path, or
   *     {@code eventbus})
   * @param stream whether the answer is streamed, for the log line
   */
  CompletionTrace(ProxyMetrics metrics, String requestId, String endpoint, String model,
      boolean stream, long arrivalNanos) {
    this.metrics = metrics;
    this.requestId = requestId;
    this.endpoint = endpoint;
    this.model = model;
    this.stream = stream;
    this.arrivalNanos = arrivalNanos;
  }

  /**
   * Starts {@code job}, which counts in flight from now on. Its failure, including a backend
   * that cannot start it and a stream that ends before its last event, goes to
   * {@code failures} (which may have ended the request already); the events are for the caller
   * to pass to {@link #event} first.
   *
   * @return the job's stream, for the caller to keep before it sets the stream's handler; null
   *     when the backend could not start the job
   */
  CompletionStream start(CompletionBackend backend, CompletionJob job,
      Handler<Throwable> failures) {
    inFlight = true;
    metrics.started();
    try {
      source = backend.start(job);
    } catch (RuntimeException e) {
      failures.handle(e);
      return null;
    }
    source.exceptionHandler(failures);
    source.endHandler(v -> {
      if (!lastEvent) {
        failures.handle(new CompletionException(Failure.INTERNAL,
            "the decode stream ended before its last event"));
      }
    });
    return source;
  }

  /** Counts an event; the first that carries text or tokens marks the time to first token. */
  void event(DecodeEvent event) {
    events++;
    lastEvent = event.isLast();
    if (firstTokenNanos == 0 && (event.tokens() > 0
        || (event.text() != null && !event.text().isEmpty()))) {
      firstTokenNanos = System.nanoTime();
      metrics.ttft(firstTokenNanos - arrivalNanos);
      metrics.prefillStages(stages());
    }
    promptTokens = event.promptTokens();
    completionTokens = event.completionTokens();
  }

  int promptTokens() {
    return promptTokens;
  }

  int completionTokens() {
    return completionTokens;
  }

  /** The client has the whole answer. */
  void succeeded(String finishReason) {
    long now = System.nanoTime();
    metrics.e2e(now - arrivalNanos);
    if (firstTokenNanos != 0 && completionTokens > 1) {
      metrics.tpot((now - firstTokenNanos) / (completionTokens - 1));
    }
    end();
    log(200, finishReason, null);
  }

  /** The client was answered with {@code error}. */
  void failed(ApiError error) {
    end();
    log(error.status(), null, error);
  }

  /** The client is gone (or gave up) before the answer ended; counted as 499. */
  void abandoned(String why) {
    end();
    log(499, why, null);
  }

  private void end() {
    if (inFlight) {
      inFlight = false;
      metrics.finished();
      // Not at the first token: that may have come from the prefill result, before the decode
      // instance's stages.
      metrics.decodeStages(stages());
    }
  }

  private TtftStages stages() {
    return source == null ? TtftStages.NONE : source.ttftStages();
  }

  private void log(int status, String outcome, ApiError error) {
    MDC.put("requestId", requestId);
    try {
      long ttftMs = firstTokenNanos == 0 ? -1 : (firstTokenNanos - arrivalNanos) / 1_000_000;
      long durationMs = (System.nanoTime() - arrivalNanos) / 1_000_000;
      String stagesText = stagesText(stages());
      if (error == null) {
        LOG.info("{} {} status={} finish={} stream={} prompt_tokens={} completion_tokens={} "
            + "ttft_ms={} {} duration_ms={}", endpoint, model, status, outcome, stream,
            promptTokens, completionTokens, ttftMs, stagesText, durationMs);
      } else {
        LOG.info("{} {} status={} error_type={} error=\"{}\" stream={} events={} prompt_tokens={} "
            + "completion_tokens={} ttft_ms={} {} duration_ms={}", endpoint, model, status,
            error.type(), error.getMessage(), stream, events, promptTokens, completionTokens,
            ttftMs, stagesText, durationMs);
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
