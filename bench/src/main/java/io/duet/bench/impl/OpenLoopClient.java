package io.duet.bench.impl;

import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.PoolOptions;
import io.vertx.core.http.RequestOptions;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.core.parsetools.RecordParser;
import java.net.URI;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeoutException;

/**
 * Streamed completions sent open loop to an OpenAI-compatible server: each request is due at
 * its arrival time whether or not earlier ones have answered. At most {@code maxInFlight} are in
 * flight; a request due while that many are waits, in order, for one to end. Its clock starts
 * when it is due, not when it is sent, so that an overloaded server shows in TTFT and E2E
 * rather than in a slower sending rate. Everything runs on one event loop of its own Vert.x.
 */
public final class OpenLoopClient implements AutoCloseable {

  /**
   * What one request gave.
   *
   * @param timing its token events, timed from when it was due
   * @param waitNanos how long it waited for a slot under the in-flight cap, 0 when it found one
   *     (its timer firing late is not counted here, but is in its latencies)
   * @param error why it failed ({@code HTTP 429}, {@code connection}, {@code timeout},
   *     {@code error event}, ...), null when it succeeded
   * @param promptTokens the prompt's tokens as the server counted them, -1 if unknown
   */
  public record Outcome(RequestTiming timing, long waitNanos, String error, int promptTokens) {
    public boolean ok() {
      return error == null;
    }
  }

  /** How far a run has got, read while it runs. */
  public record Progress(int due, int finished, int inFlight, int failed) {
  }

  private final Vertx vertx;
  private final HttpClient http;
  private final URI base;
  private final int maxInFlight;
  private final long idleTimeoutMillis;
  private final Context context;
  private volatile Progress progress = new Progress(0, 0, 0, 0);

  /**
   * @param base the server, such as {@code http://127.0.0.1:7000}
   * @param maxInFlight the cap on requests in flight (and connections)
   * @param idleTimeoutMillis a request fails with {@code timeout} when nothing arrives for this
   *     long
   */
  public OpenLoopClient(URI base, int maxInFlight, long idleTimeoutMillis) {
    if (maxInFlight <= 0) {
      throw new IllegalArgumentException("the in-flight cap must be positive, was "
          + maxInFlight);
    }
    this.base = base;
    this.idleTimeoutMillis = idleTimeoutMillis;
    this.vertx = Vertx.vertx();
    this.http = vertx.createHttpClient(new HttpClientOptions().setKeepAlive(true),
        new PoolOptions().setHttp1MaxSize(maxInFlight).setMaxWaitQueueSize(-1));
    this.context = vertx.getOrCreateContext();
    this.maxInFlight = maxInFlight;
  }

  /** The id of the first model {@code GET /v1/models} lists. */
  public Future<String> firstModel() {
    return http.request(new RequestOptions().setMethod(HttpMethod.GET)
            .setAbsoluteURI(base.resolve("/v1/models").toString())
            .setIdleTimeout(idleTimeoutMillis))
        .compose(request -> request.send())
        .compose(response -> response.body().map(body -> {
          if (response.statusCode() != 200) {
            throw new IllegalStateException("GET /v1/models answered " + response.statusCode()
                + ": " + body);
          }
          JsonArray models = new JsonObject(body).getJsonArray("data");
          if (models == null || models.isEmpty()) {
            throw new IllegalStateException("GET /v1/models lists no model: " + body);
          }
          return models.getJsonObject(0).getString("id");
        }));
  }

  /** The run so far. */
  public Progress progress() {
    return progress;
  }

  /**
   * Posts {@code bodies[i]} to {@code /v1/completions} at {@code offsetsNanos[i]} after now;
   * completes with every outcome, in order, once all have ended.
   */
  public Future<List<Outcome>> run(List<JsonObject> bodies, long[] offsetsNanos) {
    if (bodies.size() != offsetsNanos.length) {
      throw new IllegalArgumentException(bodies.size() + " bodies for " + offsetsNanos.length
          + " arrivals");
    }
    Promise<List<Outcome>> done = Promise.promise();
    context.runOnContext(v -> new Run(bodies, offsetsNanos, done).dueNext());
    return done.future();
  }

  /** One run's state, confined to the client's context. */
  private final class Run {
    final List<JsonObject> bodies;
    final long[] offsets;
    final Promise<List<Outcome>> done;
    final Outcome[] outcomes;
    final ArrayDeque<Integer> waiting = new ArrayDeque<>();
    /** When each request joined {@link #waiting}: its timer may fire a little after it is due. */
    final long[] admitted;
    /** Whether it joined behind a full cap (else it is sent at once). */
    final boolean[] capped;
    final long start = System.nanoTime();
    int due;
    int inFlight;
    int finished;
    int failed;

    Run(List<JsonObject> bodies, long[] offsets, Promise<List<Outcome>> done) {
      this.bodies = bodies;
      this.offsets = offsets;
      this.done = done;
      this.outcomes = new Outcome[bodies.size()];
      this.admitted = new long[bodies.size()];
      this.capped = new boolean[bodies.size()];
    }

    /** Admits every request due by now and sets a timer for the next one. */
    void dueNext() {
      long now = System.nanoTime();
      while (due < offsets.length && start + offsets[due] <= now) {
        admitted[due] = now;
        capped[due] = inFlight + waiting.size() >= maxInFlight;
        waiting.add(due++);
      }
      sendWaiting();
      if (due < offsets.length) {
        long millis = (start + offsets[due] - System.nanoTime() + 999_999) / 1_000_000;
        vertx.setTimer(Math.max(1, millis), t -> dueNext());
      }
      publish();
      if (bodies.isEmpty()) {
        done.complete(List.of());
      }
    }

    void sendWaiting() {
      while (inFlight < maxInFlight && !waiting.isEmpty()) {
        int index = waiting.poll();
        inFlight++;
        send(index);
      }
    }

    void send(int index) {
      // A request that found a slot did not wait, even if the machine paused this thread.
      long waitNanos = capped[index] ? System.nanoTime() - admitted[index] : 0;
      RequestTiming timing = new RequestTiming(start + offsets[index]);
      http.request(new RequestOptions().setMethod(HttpMethod.POST)
              .setAbsoluteURI(base.resolve("/v1/completions").toString())
              .setIdleTimeout(idleTimeoutMillis)
              .putHeader("Content-Type", "application/json"))
          .compose(request -> request.send(bodies.get(index).toBuffer()))
          .onSuccess(response -> read(response, index, timing, waitNanos))
          .onFailure(error -> end(index, new Outcome(timing, waitNanos, cause(error), -1)));
    }

    void read(HttpClientResponse response, int index, RequestTiming timing, long waitNanos) {
      if (response.statusCode() != 200) {
        response.body().onComplete(body -> end(index, new Outcome(timing, waitNanos,
            "HTTP " + response.statusCode(), -1)));
        return;
      }
      CompletionStreamReader reader = new CompletionStreamReader(timing);
      response.handler(RecordParser.newDelimited("\n",
          line -> reader.line(line, System.nanoTime())));
      response.exceptionHandler(error -> end(index, new Outcome(timing, waitNanos,
          cause(error), reader.promptTokens())));
      response.endHandler(v -> end(index, new Outcome(timing, waitNanos, reader.failure(),
          reader.promptTokens())));
    }

    /** Records the first outcome of a request (a failing response may report twice). */
    void end(int index, Outcome outcome) {
      if (outcomes[index] != null) {
        return;
      }
      outcomes[index] = outcome;
      inFlight--;
      finished++;
      if (!outcome.ok()) {
        failed++;
      }
      sendWaiting();
      publish();
      if (finished == outcomes.length) {
        done.complete(Arrays.asList(outcomes));
      }
    }

    void publish() {
      progress = new Progress(due, finished, inFlight, failed);
    }
  }

  private static String cause(Throwable error) {
    return error instanceof TimeoutException
        || error.getClass().getSimpleName().contains("Timeout") ? "timeout" : "connection";
  }

  @Override
  public void close() throws Exception {
    Futures.await(vertx.close(), 30);
  }
}
