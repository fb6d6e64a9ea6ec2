package io.duet.deploy.impl;

import io.duet.cluster.ClusterBootstrap;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.cluster.Topology;
import io.duet.contract.Addresses;
import io.duet.contract.InstanceInfo;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The cluster's registry as a proxy sees it: this JVM joins the topology's cluster as a
 * Hazelcast lite member (it holds no data, so its coming and going moves none), asks
 * {@link Addresses#REGISTRY_VIEW}, and leaves.
 */
public final class ClusterView {

  /** Joins at once instead of after Hazelcast's default 5 s wait for other members. */
  private static final Map<String, String> QUICK_JOIN =
      Map.of("hazelcast.wait.seconds.before.join", "0");

  private ClusterView() {
  }

  /**
   * The registry's entries.
   *
   * @param timeout for joining and for the answer each
   * @throws LaunchFailure saying why there is no answer: the cluster cannot be joined, or no
   *     registry (no proxy) answers
   */
  public static List<InstanceInfo> registry(Topology topology, Duration timeout)
      throws InterruptedException {
    DuetConfig member = memberConfig(topology);
    Vertx vertx = await(ClusterBootstrap.startLiteMember(member), timeout, "joining cluster '"
        + member.get(Settings.CLUSTER_NAME) + "' as a lite member");
    try {
      JsonArray view = await(vertx.eventBus().<JsonArray>request(Addresses.REGISTRY_VIEW,
              new JsonObject(), new DeliveryOptions().setSendTimeout(timeout.toMillis())),
          timeout.plusSeconds(1), "asking " + Addresses.REGISTRY_VIEW).body();
      List<InstanceInfo> entries = new ArrayList<>();
      view.forEach(entry -> entries.add(InstanceInfo.fromJson((JsonObject) entry)));
      return entries;
    } finally {
      try {
        await(vertx.close(), Duration.ofSeconds(ClusterBootstrap.CLOSE_TIMEOUT_SECONDS),
            "leaving the cluster");
      } catch (LaunchFailure e) {
        // best effort: the view is had, and the members drop this one when its JVM ends
      }
    }
  }

  /** The topology's cluster, joined from a free port of a host of this machine. */
  private static DuetConfig memberConfig(Topology topology) {
    String host = topology.instances().stream().map(Topology.Instance::host)
        .filter(LocalHosts::isLocal).findFirst().orElse("127.0.0.1");
    Map<String, String> properties = new HashMap<>(QUICK_JOIN);
    properties.putAll(topology.shared().get(Settings.CLUSTER_HAZELCAST_PROPERTIES));
    try {
      return topology.shared().with(Settings.CLUSTER_HOST, host)
          .with(Settings.CLUSTER_PORT, LocalHosts.freePort(host))
          .with(Settings.CLUSTER_PORT_COUNT, 1)
          .with(Settings.CLUSTER_HAZELCAST_PROPERTIES, properties);
    } catch (IOException e) {
      throw new LaunchFailure("no free port on " + host + " to join the cluster from: " + e);
    }
  }

  private static <T> T await(Future<T> future, Duration timeout, String what)
      throws InterruptedException {
    try {
      return future.toCompletionStage().toCompletableFuture()
          .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      throw new LaunchFailure(what + " failed: " + e.getCause().getMessage());
    } catch (TimeoutException e) {
      throw new LaunchFailure(what + " took more than " + timeout.toSeconds() + " s");
    }
  }
}
