package io.duet.service;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Heartbeat;
import io.duet.cluster.Settings;
import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.json.JsonObject;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A prefill or decode instance: what both have around their own work. A worker takes requests
 * on one event-bus address and fire-and-forget control messages on another, serves its status
 * endpoint, and can say how it is doing ({@link #info()}). Subclasses start and stop their own
 * parts and handle the messages; it is ready when all of it listens.
 *
 * <p>A worker deployed with {@link #heartbeatWith} announces itself on the registry from when it
 * is ready until it is undeployed, and drains when it is undeployed (SIGTERM undeploys it, see
 * {@code ClusterBootstrap.closeOnSignal}): it announces that it is {@linkplain
 * InstanceInfo.State#DRAINING draining}, so that proxies stop sending it requests at once,
 * refuses the requests that still come as UNAVAILABLE (a proxy then asks another instance),
 * and goes on with the work it has, its control messages (credits, cancels) included, until it
 * {@linkplain #isIdle is idle} or {@code instance.drain-timeout-seconds} have passed. Then it
 * announces that it {@linkplain InstanceInfo.State#LEFT left}, so that registries drop it at
 * once, and stops its parts; whatever still runs then fails. A worker deployed without it (a
 * test, a benchmark) announces nothing and stops at once.
 */
public abstract class WorkerVerticle extends AbstractVerticle {

  /** How often a draining worker looks whether it is idle. */
  private static final long DRAIN_CHECK_MILLIS = 50;

  private final String requestAddress;
  private final String controlAddress;
  private final StatusServer status;
  private DuetConfig heartbeatConfig;
  private Heartbeat heartbeat;
  private volatile boolean draining;

  protected WorkerVerticle(String requestAddress, String controlAddress, StatusServer status) {
    this.requestAddress = requestAddress;
    this.controlAddress = controlAddress;
    this.status = status;
  }

  /**
   * Makes this worker heartbeat at {@code config}'s period while it is deployed, and drain for up
   * to its {@code instance.drain-timeout-seconds} when it is undeployed. Call before deploying it.
   */
  public final WorkerVerticle heartbeatWith(DuetConfig config) {
    this.heartbeatConfig = config;
    return this;
  }

  @Override
  public final void start(Promise<Void> startPromise) {
    Future<?> service = startService();
    MessageConsumer<JsonObject> requests =
        vertx.eventBus().consumer(requestAddress, this::onRequest);
    MessageConsumer<JsonObject> control =
        vertx.eventBus().consumer(controlAddress, this::handleControl);
    Future.all(service, status.start(vertx, this::announced), requests.completion(),
            control.completion())
        .onSuccess(v -> {
          log().info(readyMessage());
          if (heartbeatConfig != null) {
            heartbeat = Heartbeat.start(vertx, heartbeatConfig, this::announced);
          }
        })
        .<Void>mapEmpty().onComplete(startPromise);
  }

  @Override
  public final void stop(Promise<Void> stopPromise) {
    drain().onComplete(drained -> {
      // Before the parts stop, so that no heartbeat announces a worker that is closing.
      if (heartbeat != null) {
        heartbeat.leave();
      }
      Future.all(stopService(), status.close()).<Void>mapEmpty().onComplete(stopPromise);
    });
  }

  /** This instance as the registry should see it now, in its own terms. Any thread. */
  public abstract InstanceInfo info();

  /** {@link #info()} with the state this worker is in: what it announces and reports. */
  private InstanceInfo announced() {
    InstanceInfo info = info();
    return draining ? info.withState(InstanceInfo.State.DRAINING) : info;
  }

  /**
   * Announces that this worker is draining, then completes once it is idle or its drain timeout
   * has passed; at once for a worker without a heartbeat.
   */
  private Future<Void> drain() {
    if (heartbeat == null) {
      return Future.succeededFuture();
    }
    draining = true;
    heartbeat.beatNow();
    long timeoutMillis = heartbeatConfig.get(Settings.INSTANCE_DRAIN_TIMEOUT_SECONDS) * 1000L;
    long start = System.nanoTime();
    log().info("draining for at most {} s: refusing new requests, finishing those it has",
        timeoutMillis / 1000);
    Promise<Void> drained = Promise.promise();
    checkDrained(drained, start, timeoutMillis);
    return drained.future();
  }

  private void checkDrained(Promise<Void> drained, long start, long timeoutMillis) {
    long elapsedMillis = (System.nanoTime() - start) / 1_000_000;
    if (isIdle()) {
      log().info("drained in {} ms", elapsedMillis);
      drained.complete();
    } else if (elapsedMillis >= timeoutMillis) {
      log().warn("drain timeout of {} s reached with work left: stopping anyway",
          timeoutMillis / 1000);
      drained.complete();
    } else {
      vertx.setTimer(DRAIN_CHECK_MILLIS, t -> checkDrained(drained, start, timeoutMillis));
    }
  }

  private void onRequest(Message<JsonObject> message) {
    if (draining) {
      message.fail(Failure.UNAVAILABLE.code(), Failure.UNAVAILABLE.message(
          "this instance is draining: it takes no new requests"));
      return;
    }
    handleRequest(message);
  }

  private Logger log() {
    return LoggerFactory.getLogger(getClass());
  }

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

  /**
   * Whether the worker has finished every request it took, so that stopping it now fails none.
   * Asked on the verticle's context while it drains.
   */
  protected abstract boolean isIdle();

  /** Stops the worker's own parts and frees what they hold. */
  protected abstract Future<?> stopService();

  /** A request on the worker's request address; the sender waits for the reply. */
  protected abstract void handleRequest(Message<JsonObject> message);

  /** A fire-and-forget message on the worker's control address. */
  protected abstract void handleControl(Message<JsonObject> message);

  /** What the worker logs once it is ready: what it listens on and what it serves. */
  protected abstract String readyMessage();
}
