package io.duet.service;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Heartbeat;
import io.duet.contract.InstanceInfo;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.json.JsonObject;
import org.slf4j.LoggerFactory;

/**
 * A prefill or decode instance: what both have around their own work. A worker takes requests
 * on one event-bus address and fire-and-forget control messages on another, serves its status
 * endpoint, and can say how it is doing ({@link #info()}). Subclasses start and stop their own
 * parts and handle the messages; it is ready when all of it listens.
 *
 * <p>A worker deployed with {@link #heartbeatWith} announces itself on the registry from when it
 * is ready until it is undeployed: an undeployed worker no longer answers on its addresses, so
 * the cluster must stop seeing it, and registries drop it after their heartbeat timeout.
 */
public abstract class WorkerVerticle extends AbstractVerticle {

  private final String requestAddress;
  private final String controlAddress;
  private final StatusServer status;
  private DuetConfig heartbeatConfig;
  private Heartbeat heartbeat;

  protected WorkerVerticle(String requestAddress, String controlAddress, StatusServer status) {
    this.requestAddress = requestAddress;
    this.controlAddress = controlAddress;
    this.status = status;
  }

  /**
   * Makes this worker heartbeat at {@code config}'s period while it is deployed. Call before
   * deploying it; a worker deployed without it (a test, a benchmark) announces nothing.
   */
  public final WorkerVerticle heartbeatWith(DuetConfig config) {
    this.heartbeatConfig = config;
    return this;
  }

  @Override
  public final void start(Promise<Void> startPromise) {
    Future<?> service = startService();
    MessageConsumer<JsonObject> requests =
        vertx.eventBus().consumer(requestAddress, this::handleRequest);
    MessageConsumer<JsonObject> control =
        vertx.eventBus().consumer(controlAddress, this::handleControl);
    Future.all(service, status.start(vertx, this::info), requests.completion(),
            control.completion())
        .onSuccess(v -> {
          LoggerFactory.getLogger(getClass()).info(readyMessage());
          if (heartbeatConfig != null) {
            heartbeat = Heartbeat.start(vertx, heartbeatConfig, this::info);
          }
        })
        .<Void>mapEmpty().onComplete(startPromise);
  }

  @Override
  public final void stop(Promise<Void> stopPromise) {
    // First, so that no heartbeat announces a worker whose parts are already closing.
    if (heartbeat != null) {
      heartbeat.stop();
    }
    Future.all(stopService(), status.close()).<Void>mapEmpty().onComplete(stopPromise);
  }

  /** This instance as the registry should see it now. Any thread. */
  public abstract InstanceInfo info();

  /** The registry the status endpoint serves; the worker adds its own meters. */
  protected final PrometheusMeterRegistry metrics() {
    return status.registry();
  }

  /** The status server's port; 0 until it listens. */
  protected final int statusPort() {
    return status.actualPort();
  }

  /** Starts the worker's own parts; completes when they are ready. On the verticle's context. */
  protected abstract Future<?> startService();

  /** Stops the worker's own parts and frees what they hold. */
  protected abstract Future<?> stopService();

  /** A request on the worker's request address; the sender waits for the reply. */
  protected abstract void handleRequest(Message<JsonObject> message);

  /** A fire-and-forget message on the worker's control address. */
  protected abstract void handleControl(Message<JsonObject> message);

  /** What the worker logs once it is ready: what it listens on and what it serves. */
  protected abstract String readyMessage();
}
