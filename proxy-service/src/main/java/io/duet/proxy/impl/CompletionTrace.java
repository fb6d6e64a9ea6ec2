package io.duet.proxy.impl;

import io.duet.contract.DecodeEvent;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.TtftStages;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * The bookkeeping of one completion that every front end shares: its count among the requests
 * in flight, its time to first token (with the stages its instances reported), time per output
 * token and end-to-end latency in {@link ProxyMetrics}, and its log line when it ends. Confined
 * to the request's event loop; exactly one of {@link #succeeded}, {@link #failed} and
 * {@link #abandoned} ends it.
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

  /** The job is about to start: it counts in flight until it ends. */
  void started() {
    inFlight = true;
    metrics.started();
  }

  /** The job's stream, whose TTFT stages the metrics and the log line report. */
  void follow(CompletionStream value) {
    source = value;
  }

  /** Counts an event; the first that carries text or tokens marks the time to first token. */
  void event(DecodeEvent event) {
    events++;
    if (firstTokenNanos == 0 && (event.tokens() > 0
        || (event.text() != null && !event.text().isEmpty()))) {
      firstTokenNanos = System.nanoTime();
      metrics.ttft(firstTokenNanos - arrivalNanos);
      metrics.ttftStages(stages());
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
