package io.duet.proxy.impl;

import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.duet.contract.ServiceException;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.MessageProducer;
import io.vertx.core.json.JsonObject;
import java.util.function.IntConsumer;

/**
 * One event-bus client's completion: runs the job on the backend and sends its events to the
 * client's stream address, numbered from 0, never more than the client granted.
 *
 * <p>When the client's credits run out the backend stream is paused, which stops the proxy
 * granting credit to the decode instance, so the decode instance coalesces tokens and the proxy
 * holds at most the few events already on their way; a last event that finds no credit waits for
 * one. The client is taken for gone, and the job cancelled, when an event cannot be delivered
 * (nothing consumes its address any more: it unregistered, or its JVM left the cluster) or when
 * it grants no credit for the stall timeout after running out; a dead client that had no credit
 * left is found by the second rule, since nothing is sent to it. Event-loop confined.
 */
final class EventBusExchange {

  private final Vertx vertx;
  private final CompletionJob job;
  private final MessageProducer<JsonObject> client;
  private final CompletionTrace trace;
  private final long stallTimeoutMillis;
  private final IntConsumer onEnd;

  private CompletionStream stream;
  private long credits;
  private int sequence;
  private boolean paused;
  private long stallTimer = -1;
  /** No more events of the backend matter: the last one is known, or the job was cancelled. */
  private boolean done;
  /** The last event, when it waits for a credit. */
  private DecodeEvent held;
  /** Counted, logged and forgotten. */
  private boolean ended;

  /**
   * @param onEnd called once, with the status the request counts with (as over HTTP: 200, the
   *     failure's status, 499 for a client that cancelled or went away)
   */
  EventBusExchange(Vertx vertx, CompletionJob job, String streamAddress, int initialCredits,
      CompletionTrace trace, long stallTimeoutMillis, IntConsumer onEnd) {
    this.vertx = vertx;
    this.job = job;
    this.client = vertx.eventBus().sender(streamAddress);
    this.credits = initialCredits;
    this.trace = trace;
    this.stallTimeoutMillis = stallTimeoutMillis;
    this.onEnd = onEnd;
  }

  void start(CompletionBackend backend) {
    stream = trace.start(backend, job, this::fail);
    if (stream != null) {
      stream.handler(this::onEvent);
    }
  }

  /** The client grants {@code granted} more events. */
  void credit(int granted) {
    if (ended || granted <= 0) {
      return;
    }
    credits += granted;
    cancelStallTimer();
    if (held != null) {
      DecodeEvent last = held;
      held = null;
      send(last);
    } else if (paused) {
      paused = false;
      stream.resume();
    }
  }

  /**
   * The client cancels: stops the job, which frees its KV on both instances, and answers with
   * the stream's last event (its own end, when it had one waiting for credit).
   */
  DecodeEvent cancel() {
    DecodeEvent last = held;
    if (last == null) {
      stopJob();
      last = lastEvent(Failure.CANCELLED, "cancelled by the client");
    }
    held = null;
    complete(last);
    return last;
  }

  /** The proxy is stopping: the job is cancelled and the client told, if it has credit. */
  void close() {
    if (!done) {
      stream.cancel();
      fail(new CompletionException(Failure.UNAVAILABLE, "the proxy is shutting down"));
    }
    if (!ended) {
      abandon("the proxy shut down before the client took the last event");
    }
  }

  private void onEvent(DecodeEvent event) {
    if (done) {
      return;
    }
    trace.event(event);
    DecodeEvent out = new DecodeEvent(job.requestId(), sequence++, event.text(), event.tokens(),
        event.completionTokens(), event.promptTokens(), event.finishReason(), event.failure(),
        event.error());
    if (event.isLast()) {
      finish(out);
    } else {
      send(out);
    }
  }

  private void fail(Throwable error) {
    if (done) {
      return;
    }
    Failure failure = error instanceof ServiceException known ? known.failure() : Failure.INTERNAL;
    finish(lastEvent(failure, String.valueOf(error.getMessage())));
  }

  private DecodeEvent lastEvent(Failure failure, String message) {
    return new DecodeEvent(job.requestId(), sequence++, "", 0, trace.completionTokens(),
        trace.promptTokens(), null, failure.name(), message);
  }

  private void finish(DecodeEvent last) {
    done = true;
    if (credits > 0) {
      send(last);
    } else {
      held = last;
    }
  }

  private void send(DecodeEvent event) {
    credits--;
    client.write(event.toJson()).onFailure(this::clientGone);
    if (event.isLast()) {
      complete(event);
    } else if (credits == 0) {
      paused = true;
      stream.pause();
      stallTimer = vertx.setTimer(stallTimeoutMillis, t -> stalled());
    }
  }

  /** The client has the last event (sent, or the reply to its cancel). */
  private void complete(DecodeEvent last) {
    ended = true;
    cancelStallTimer();
    int status = 200;
    if (last.failure() == null) {
      trace.succeeded(last.finishReason());
    } else {
      ApiError error = ApiError.of(Failure.parse(last.failure()), last.error());
      trace.failed(error);
      status = error.status();
    }
    onEnd.accept(status);
  }

  private void clientGone(Throwable error) {
    if (!ended) {
      stopJob();
      abandon("the client's stream address is gone: " + error.getMessage());
    }
  }

  private void stalled() {
    if (!ended) {
      stopJob();
      abandon("the client granted no credit for " + stallTimeoutMillis + " ms");
    }
  }

  private void stopJob() {
    if (!done) {
      done = true;
      stream.cancel();
    }
  }

  private void abandon(String why) {
    ended = true;
    held = null;
    cancelStallTimer();
    trace.abandoned(why);
    onEnd.accept(499);
  }

  private void cancelStallTimer() {
    if (stallTimer >= 0) {
      vertx.cancelTimer(stallTimer);
      stallTimer = -1;
    }
  }
}
