package io.duet.proxy;

import io.vertx.core.Future;

import java.util.List;
import java.util.Optional;

/**
 * Runs one completion through the cluster (prefill on a P instance, decode on a D instance).
 * The HTTP layer ({@link OpenAiApi}) only talks to the cluster through this seam.
 */
public interface CompletionBackend {

  /**
   * Starts a job. The returned stream emits {@link io.duet.contract.DecodeEvent}s on the
   * caller's Vert.x context; {@code pause()}/{@code resume()} apply backpressure (they map to
   * stream credits); the stream ends after the event whose {@code isLast()} is true. A failure
   * before any event (no instance, prefill failed, bad prompt) is reported through the stream's
   * {@code exceptionHandler} with a {@link CompletionException} carrying a
   * {@link io.duet.contract.Failure}.
   */
  CompletionStream start(CompletionJob job);

  /**
   * Refuses a new job for {@code model} up front when the backend is at its limits, so that a
   * front end answers at once (HTTP 429, an OVERLOADED reply to an event-bus client) instead of
   * spending a prefill on a job that could only wait or be refused. By default every job is
   * taken.
   *
   * @throws CompletionException with {@link io.duet.contract.Failure#OVERLOADED} when the
   *     backend takes no job for the model now
   */
  default void checkCapacity(String model) {
  }

  /**
   * Models currently served (from the live registry): the names of the models that at least one
   * prefill and one decode instance serve.
   */
  List<String> models();

  /**
   * Whether {@code model} is one this backend is meant to serve (configured for it, or served it
   * since it started) even when it does not now: a request for it is then answered 503 with
   * {@code Retry-After}, as a passing outage, rather than 404. By default no such model.
   */
  default boolean expects(String model) {
    return false;
  }

  /**
   * The name of the chat template the instances serving {@code model} announce, if they do;
   * the proxy renders chat requests with it unless it is configured with one of its own.
   */
  default Optional<String> chatTemplate(String model) {
    return Optional.empty();
  }

  /**
   * Who {@code model} is {@code owned_by} in {@code /v1/models}: {@code duet}, or
   * {@code duet-sim} when the instances serving it run the simulated engine, so that no client
   * takes its pseudo-text for a model's.
   */
  default String owner(String model) {
    return OWNER;
  }

  /** {@link #owner} of a model a real engine runs. */
  String OWNER = "duet";
  /** {@link #owner} of a model the simulated engine runs. */
  String SIMULATED_OWNER = "duet-sim";

  /**
   * Called on the context of each HTTP server that uses this backend, before the server serves
   * requests: a backend confined to one context registers its consumers and timers here.
   * Completes when the backend is ready.
   */
  default Future<Void> open() {
    return Future.succeededFuture();
  }

  /** Called on that context when the server stops, or when it failed to start. */
  default Future<Void> close() {
    return Future.succeededFuture();
  }
}
