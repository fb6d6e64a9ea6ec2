package io.duet.cluster;

import io.duet.cluster.impl.ClusterMember;
import io.duet.contract.Addresses;
import io.duet.contract.InstanceInfo;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.json.JsonObject;
import java.util.Objects;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Announces one instance: publishes what {@code current} supplies on {@link Addresses#REGISTRY}
 * at once and then every {@code cluster.heartbeat-millis}, with its {@code heartbeatMillis}
 * stamped to the time of sending. A supplier that returns null or throws skips that beat.
 * {@link #beatNow} announces a change (such as draining) without waiting for the next period,
 * and {@link #leave} ends with an announcement that the instance has left.
 */
public final class Heartbeat {

  /**
   * Delivery header carrying the Hazelcast member UUID of the sender, which lets a
   * {@link Registry} drop the instance at once when that member leaves the cluster.
   */
  public static final String MEMBER_HEADER = "duet-member";

  private static final Logger log = LoggerFactory.getLogger(Heartbeat.class);

  private final Vertx vertx;
  private final Supplier<InstanceInfo> current;
  private final DeliveryOptions delivery = new DeliveryOptions();
  private final long timerId;
  private boolean stopped;

  private Heartbeat(Vertx vertx, DuetConfig config, Supplier<InstanceInfo> current) {
    this.vertx = vertx;
    this.current = current;
    ClusterMember.localMemberId(vertx).ifPresent(id -> delivery.addHeader(MEMBER_HEADER, id));
    this.timerId = vertx.setPeriodic(0, config.get(Settings.CLUSTER_HEARTBEAT_MILLIS),
        id -> beatNow());
  }

  /** Starts heartbeating; the first heartbeat goes out at once (on a Vert.x context). */
  public static Heartbeat start(Vertx vertx, DuetConfig config, Supplier<InstanceInfo> current) {
    Objects.requireNonNull(vertx, "vertx");
    Objects.requireNonNull(config, "config");
    Objects.requireNonNull(current, "current");
    return new Heartbeat(vertx, config, current);
  }

  /** Publishes a heartbeat now, as the period would; nothing once stopped. */
  public void beatNow() {
    publish(null);
  }

  /**
   * Stops heartbeating and publishes the instance's last announcement, {@link
   * InstanceInfo.State#LEFT}, so that registries drop it at once instead of after their
   * heartbeat timeout. Nothing is published after this returns; a second call publishes nothing.
   */
  public void leave() {
    publish(InstanceInfo.State.LEFT);
  }

  /** Stops heartbeating; nothing is published after this returns. Idempotent. */
  public void stop() {
    synchronized (this) {
      stopped = true;
    }
    vertx.cancelTimer(timerId);
  }

  /**
   * Publishes the current info; with a {@code finalState}, as the instance's last announcement,
   * after which it stops.
   */
  private void publish(InstanceInfo.State finalState) {
    JsonObject message = message(finalState);
    synchronized (this) {
      if (stopped) {
        return;
      }
      if (message != null) {
        vertx.eventBus().publish(Addresses.REGISTRY, message, delivery);
      }
      if (finalState != null) {
        stop();
      }
    }
  }

  private JsonObject message(InstanceInfo.State state) {
    try {
      InstanceInfo info = current.get();
      if (info == null) {
        return null;
      }
      InstanceInfo stamped = info.withLoad(info.load(), System.currentTimeMillis());
      return (state == null ? stamped : stamped.withState(state)).toJson();
    } catch (RuntimeException e) {
      log.warn("Heartbeat skipped: no valid instance info", e);
      return null;
    }
  }
}
