package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.config.Config;
import io.duet.cluster.Registry.ChangeKind;
import io.duet.cluster.impl.ClusterMember;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.vertx.core.Vertx;
import io.vertx.junit5.VertxExtension;
import io.vertx.junit5.VertxTestContext;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Two clustered Vert.x instances in one JVM. Each test uses its own cluster name and its own
 * port range, so that members left over by another test (or JVM) cannot join.
 */
@ExtendWith(VertxExtension.class)
class ClusterRegistryTest {

  private final List<Vertx> nodes = new CopyOnWriteArrayList<>();

  private static DuetConfig clusterConfig(int heartbeatMillis, int timeoutMillis) {
    int base = 20_000 + 20 * ThreadLocalRandom.current().nextInt(2_000);
    return DuetConfig.defaults()
        .with(Settings.CLUSTER_NAME, "duet-test-" + UUID.randomUUID())
        .with(Settings.CLUSTER_HOST, "127.0.0.1")
        .with(Settings.CLUSTER_PORT, base)
        .with(Settings.CLUSTER_PORT_COUNT, 10)
        .with(Settings.CLUSTER_MEMBERS, List.of("127.0.0.1"))
        .with(Settings.CLUSTER_HEARTBEAT_MILLIS, heartbeatMillis)
        .with(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS, timeoutMillis);
  }

  /**
   * Starts the members one after the other (two members starting together may both elect
   * themselves master), from the test thread rather than from a Vert.x context.
   */
  private List<Vertx> startNodes(DuetConfig config, int count) throws Exception {
    for (int i = 0; i < count; i++) {
      nodes.add(ClusterBootstrap.start(config).toCompletionStage().toCompletableFuture()
          .get(30, TimeUnit.SECONDS));
    }
    return List.copyOf(nodes);
  }

  @AfterEach
  void closeNodes() throws Exception {
    for (Vertx node : nodes) {
      node.close().toCompletionStage().toCompletableFuture().get(20, TimeUnit.SECONDS);
    }
  }

  private static InstanceInfo prefill(String id) {
    return new InstanceInfo(id, Role.PREFILL, 0, 1, "127.0.0.1", 8100, 9100, "stories15M", "fp-1",
        "llama2", 2048, new InstanceInfo.Load(0, 0, 0, 0, 128), 0);
  }

  @Test
  void hazelcastConfigIsBuiltInCode() {
    DuetConfig config = clusterConfig(200, 1000)
        .with(Settings.CLUSTER_MEMBERS, List.of("127.0.0.1", "10.1.2.3:5801"))
        .with(Settings.CLUSTER_HAZELCAST_PROPERTIES,
            Map.of("hazelcast.max.no.heartbeat.seconds", "15"));
    Config hz = ClusterBootstrap.hazelcastConfig(config);
    assertEquals(config.get(Settings.CLUSTER_NAME), hz.getClusterName());
    assertEquals("false", hz.getProperty("hazelcast.phone.home.enabled"));
    assertEquals("slf4j", hz.getProperty("hazelcast.logging.type"));
    assertEquals("false", hz.getProperty("hazelcast.socket.bind.any"));
    assertEquals("15", hz.getProperty("hazelcast.max.no.heartbeat.seconds"),
        "the configured properties override Duet's defaults");
    assertEquals("0", hz.getProperty("hazelcast.wait.seconds.before.join"));
    assertEquals("1", hz.getProperty("hazelcast.heartbeat.interval.seconds"));
    assertEquals("10", ClusterBootstrap.hazelcastConfig(clusterConfig(200, 1000))
        .getProperty("hazelcast.max.no.heartbeat.seconds"));
    assertEquals(config.get(Settings.CLUSTER_PORT), hz.getNetworkConfig().getPort());
    assertTrue(hz.getNetworkConfig().isPortAutoIncrement());
    assertEquals(10, hz.getNetworkConfig().getPortCount());
    assertEquals("127.0.0.1", hz.getNetworkConfig().getPublicAddress());
    assertTrue(hz.getNetworkConfig().getInterfaces().isEnabled());
    assertEquals(List.of("127.0.0.1"), List.copyOf(hz.getNetworkConfig().getInterfaces().getInterfaces()));
    var join = hz.getNetworkConfig().getJoin();
    assertTrue(!join.getMulticastConfig().isEnabled());
    assertTrue(!join.getAutoDetectionConfig().isEnabled());
    assertTrue(join.getTcpIpConfig().isEnabled());
    assertEquals(List.of("127.0.0.1", "10.1.2.3:5801"), join.getTcpIpConfig().getMembers());
    assertNotEquals(hz, ClusterBootstrap.hazelcastConfig(config), "a fresh Config per call");
  }

  @Test
  @Timeout(value = 30, unit = TimeUnit.SECONDS)
  void heartbeatSeenAcrossTheClusterAndDroppedAfterItStops(VertxTestContext ctx) throws Exception {
    DuetConfig config = clusterConfig(200, 1000);
    long[] stoppedAt = new long[1];
    List<Vertx> pair = startNodes(config, 2);
    Vertx a = pair.get(0);
    Vertx b = pair.get(1);
    assertEquals(2, ClusterMember.hazelcast(a).orElseThrow().getCluster().getMembers().size());
    assertEquals(2, ClusterMember.hazelcast(b).orElseThrow().getCluster().getMembers().size());
    Registry registry = Registry.create(a, config);
    String first = config.forRole(Role.PREFILL).get(Settings.INSTANCE_ID);
    String second = config.forRole(Role.PREFILL).get(Settings.INSTANCE_ID);
    assertNotEquals(first, second);
    Heartbeat[] heartbeat = new Heartbeat[1];
    registry.onChange(change -> {
      String id = change.instance().instanceId();
      long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - stoppedAt[0]);
      if (change.kind() == ChangeKind.ADDED) {
        ctx.verify(() -> {
          assertEquals(List.of(id), registry.instances(Role.PREFILL).stream()
              .map(InstanceInfo::instanceId).toList());
          assertEquals(9100, registry.get(id, 0).orElseThrow().kvPort());
        });
        heartbeat[0].stop();
        stoppedAt[0] = System.nanoTime();
        if (id.equals(second)) {
          // this time the instance also leaves the cluster
          nodes.remove(b);
          b.close().onFailure(ctx::failNow);
        }
      } else if (change.kind() == ChangeKind.REMOVED && id.equals(first)) {
        ctx.verify(() -> {
          // timeout 1000 ms after the last beat (<= 200 ms before the stop), checked every 250 ms
          assertTrue(change.reason().contains("no heartbeat"), change.reason());
          assertTrue(millis >= 700 && millis <= 1250 + 500, "dropped after " + millis + " ms");
          assertEquals(List.of(), registry.instances());
        });
        heartbeat[0] = Heartbeat.start(b, config, () -> prefill(second));
      } else if (change.kind() == ChangeKind.REMOVED && id.equals(second)) {
        ctx.verify(() -> {
          // within the timeout; leaving the cluster is usually noticed sooner
          assertTrue(millis <= 1250 + 500, "dropped after " + millis + " ms: " + change.reason());
          assertEquals(List.of(), registry.instances());
        });
        registry.close().onComplete(ctx.succeedingThenComplete());
      }
    });
    registry.ready().onComplete(ctx.succeeding(v ->
        heartbeat[0] = Heartbeat.start(b, config, () -> prefill(first))));
  }

  @Test
  @Timeout(value = 30, unit = TimeUnit.SECONDS)
  void instanceOfALeavingMemberIsDroppedBeforeItsTimeout(VertxTestContext ctx) throws Exception {
    // a timeout far longer than the test: only the member-left listener can explain the drop
    DuetConfig config = clusterConfig(200, 120_000);
    List<Vertx> pair = startNodes(config, 2);
    Vertx a = pair.get(0);
    Vertx b = pair.get(1);
    Registry registry = Registry.create(a, config);
    registry.onChange(change -> {
      if (change.kind() == ChangeKind.ADDED) {
        nodes.remove(b);
        b.close().onFailure(ctx::failNow); // the heartbeat is not stopped first
      } else if (change.kind() == ChangeKind.REMOVED) {
        ctx.verify(() -> assertTrue(change.reason().contains("left"), change.reason()));
        registry.close().onComplete(ctx.succeedingThenComplete());
      }
    });
    registry.ready().onComplete(ctx.succeeding(v ->
        Heartbeat.start(b, config, () -> prefill("prefill-leaving"))));
  }
}
