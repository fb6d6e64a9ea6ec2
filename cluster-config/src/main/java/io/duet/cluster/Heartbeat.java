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
        id -> beat());
  }

  /** Starts heartbeating; the first heartbeat goes out at once (on a Vert.x context). */
  public static Heartbeat start(Vertx vertx, DuetConfig config, Supplier<InstanceInfo> current) {
    Objects.requireNonNull(vertx, "vertx");
    Objects.requireNonNull(config, "config");
    Objects.requireNonNull(current, "current");
    return new Heartbeat(vertx, config, current);
  }

  private void beat() {
    JsonObject message;
    try {
      InstanceInfo info = current.get();
      if (info == null) {
        return;
      }
      message = info.withLoad(info.load(), System.currentTimeMillis()).toJson();
    } catch (RuntimeException e) {
      log.warn("Heartbeat skipped: no valid instance info", e);
      return;
    }
    synchronized (this) {
      if (!stopped) {
        vertx.eventBus().publish(Addresses.REGISTRY, message, delivery);
      }
    }
  }

  /** Stops heartbeating; nothing is published after this returns. Idempotent. */
  public void stop() {
    synchronized (this) {
      stopped = true;
    }
    vertx.cancelTimer(timerId);
  }
}
