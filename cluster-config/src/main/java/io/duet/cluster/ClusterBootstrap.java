package io.duet.cluster;

import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.NetworkConfig;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.eventbus.EventBusOptions;
import io.vertx.core.internal.VertxInternal;
import io.vertx.spi.cluster.hazelcast.HazelcastClusterManager;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Starts a clustered Vert.x on Hazelcast from a {@link DuetConfig}, with the Hazelcast
 * configuration built in code (no {@code hazelcast.xml}): cluster name, a port range with
 * auto-increment (several members per host), sockets bound to {@code cluster.host} only,
 * TCP-IP join over {@code cluster.members} with multicast and auto-detection off, phone-home
 * off and logging through SLF4J, and the failure detection of {@link #DEFAULT_PROPERTIES}.
 * The event bus listens on {@code cluster.host} too, on an ephemeral port. {@code cluster.host}
 * must therefore be an address of this machine that the other members can reach (a wildcard
 * address such as 0.0.0.0 is not supported).
 */
public final class ClusterBootstrap {

  /**
   * How long the shutdown hook of {@link #closeOnSignal} waits for Vert.x to close, beyond the
   * {@code instance.drain-timeout-seconds} its instances may take to drain.
   */
  public static final long CLOSE_TIMEOUT_SECONDS = 20;

  /** How soon and how often a cluster's master looks for a split cluster to merge. */
  public static final int MERGE_DELAY_SECONDS = 5;

  /**
   * The Hazelcast properties Duet sets, before {@code cluster.hazelcast-properties} (which may
   * override them). Hazelcast's own defaults suit long-lived data grids, not members that come
   * and go at run time: its master waits 5 s after a join request for others to batch, and it
   * takes a member that stopped answering for dead only after 60 s. A member killed on a live
   * machine is noticed at once anyway (its connections are refused), so this bounds what a
   * frozen or cut-off member costs; the registry stops routing to it after its heartbeat
   * timeout whatever Hazelcast does. 10 s, not less: a member taken for dead falsely leaves the
   * cluster until Hazelcast merges it back.
   *
   * <p>Split clusters merge within seconds instead of minutes. A member that finds none of the
   * addresses it was given forms a cluster of its own (a restarted member whose only listed
   * member was itself, members started at once that did not see each other, a member falsely
   * taken for dead); each cluster's master then looks for the others on every address of its
   * member list, first {@value #MERGE_DELAY_SECONDS} s after it started and then every
   * {@value #MERGE_DELAY_SECONDS} s (Hazelcast's defaults: 300 s, then every 120 s), and the
   * smaller cluster joins the larger. The cost: each master tries every listed address that is
   * not in its cluster that often, and a merge restarts the smaller side's members' Hazelcast
   * node (Vert.x registers their event-bus consumers again), which is what a split costs anyway.
   * Listing every member in {@code cluster.members} (a topology file does) avoids the split in
   * the first place.
   */
  public static final Map<String, String> DEFAULT_PROPERTIES = Map.of(
      "hazelcast.wait.seconds.before.join", "0",
      "hazelcast.heartbeat.interval.seconds", "1",
      "hazelcast.max.no.heartbeat.seconds", "10",
      "hazelcast.merge.first.run.delay.seconds", String.valueOf(MERGE_DELAY_SECONDS),
      "hazelcast.merge.next.run.delay.seconds", String.valueOf(MERGE_DELAY_SECONDS));


  private static final Logger log = LoggerFactory.getLogger(ClusterBootstrap.class);

  private ClusterBootstrap() {
  }

  /** Starts a clustered Vert.x with default {@link VertxOptions}. */
  public static Future<Vertx> start(DuetConfig config) {
    return start(config, new VertxOptions());
  }

  /**
   * Starts a clustered Vert.x with {@code options} (worker pool sizes and the like). The event
   * bus is bound to {@code cluster.host} on an ephemeral port unless {@code options} set a host.
   */
  public static Future<Vertx> start(DuetConfig config, VertxOptions options) {
    return start(config, options, false);
  }

  /**
   * Joins the cluster as a Hazelcast lite member, which holds no share of the cluster's data:
   * for tools that only talk on the event bus, such as {@code duet.jar status}, so that their
   * coming and going moves no data. It needs a member that is not lite (any service) to join.
   */
  public static Future<Vertx> startLiteMember(DuetConfig config) {
    return start(config, new VertxOptions(), true);
  }

  private static Future<Vertx> start(DuetConfig config, VertxOptions options, boolean lite) {
    Objects.requireNonNull(config, "config");
    VertxOptions vertxOptions = new VertxOptions(options)
        .setEventLoopPoolSize(config.get(Settings.INSTANCE_EVENT_LOOPS));
    EventBusOptions eventBus = vertxOptions.getEventBusOptions();
    if (eventBus.getHost() == null) {
      // Needed: with a Hazelcast public address set, the cluster manager reports no cluster
      // host and Vert.x would bind the event bus to the first non-loopback interface.
      eventBus.setHost(config.get(Settings.CLUSTER_HOST));
    }
    Config hazelcast;
    try {
      hazelcast = hazelcastConfig(config).setLiteMember(lite);
    } catch (IllegalArgumentException e) {
      return Future.failedFuture(e);
    }
    log.info("Joining cluster '{}' as {}{}:{}+ with members {}",
        config.get(Settings.CLUSTER_NAME), lite ? "a lite member " : "",
        config.get(Settings.CLUSTER_HOST), config.get(Settings.CLUSTER_PORT),
        config.get(Settings.CLUSTER_MEMBERS));
    return Vertx.builder()
        .with(vertxOptions)
        .withClusterManager(new HazelcastClusterManager(hazelcast))
        .buildClustered();
  }

  /**
   * The Hazelcast configuration {@link #start} uses; a fresh object on every call (the cluster
   * manager writes into it, so one must never be shared by two members).
   */
  public static Config hazelcastConfig(DuetConfig config) {
    Config hz = new Config();
    hz.setClusterName(config.get(Settings.CLUSTER_NAME));
    hz.setProperty("hazelcast.phone.home.enabled", "false");
    DEFAULT_PROPERTIES.forEach(hz::setProperty);
    hz.setProperty("hazelcast.logging.type", "slf4j");
    // a "host" member without a port is tried on this many ports from cluster.port
    hz.setProperty("hazelcast.tcp.join.port.try.count",
        String.valueOf(config.get(Settings.CLUSTER_PORT_COUNT)));

    String host = config.get(Settings.CLUSTER_HOST);
    hz.setProperty("hazelcast.socket.bind.any", "false");

    NetworkConfig network = hz.getNetworkConfig();
    network.setPort(config.get(Settings.CLUSTER_PORT))
        .setPortAutoIncrement(true)
        .setPortCount(config.get(Settings.CLUSTER_PORT_COUNT));
    network.setPublicAddress(host);
    network.getInterfaces().setEnabled(true).addInterface(resolve(host));

    JoinConfig join = network.getJoin();
    join.getMulticastConfig().setEnabled(false);
    join.getAutoDetectionConfig().setEnabled(false);
    List<String> members = config.get(Settings.CLUSTER_MEMBERS).isEmpty() ? List.of(host)
        : config.get(Settings.CLUSTER_MEMBERS);
    join.getTcpIpConfig().setEnabled(true).setMembers(members);

    // last, so that a topology can tune failure detection, join waits, ...
    config.get(Settings.CLUSTER_HAZELCAST_PROPERTIES).forEach(hz::setProperty);
    return hz;
  }

  /**
   * Registers a JVM shutdown hook (SIGTERM, SIGINT, normal exit) that stops this member cleanly:
   * it undeploys every verticle, which lets a prefill or decode instance drain (it refuses new
   * requests and finishes those it has, for up to {@code instance.drain-timeout-seconds}), then
   * closes {@code vertx}, which leaves the cluster. Draining comes first so that the instance is
   * still a member, reachable on the event bus and over its KV port, while it finishes. The hook
   * waits at most the drain timeout plus {@value #CLOSE_TIMEOUT_SECONDS} seconds. Needed because
   * the Hazelcast cluster manager turns Hazelcast's own hook off.
   *
   * @return the hook, for {@link Runtime#removeShutdownHook} when Vert.x is closed otherwise
   */
  public static Thread closeOnSignal(Vertx vertx, DuetConfig config) {
    Objects.requireNonNull(vertx, "vertx");
    long limitSeconds = config.get(Settings.INSTANCE_DRAIN_TIMEOUT_SECONDS) + CLOSE_TIMEOUT_SECONDS;
    Thread hook = new Thread(() -> {
      log.info("Shutting down: draining and undeploying, then leaving the cluster");
      long start = System.nanoTime();
      try {
        stop(vertx).toCompletionStage().toCompletableFuture().get(limitSeconds, TimeUnit.SECONDS);
        log.info("Left the cluster and closed in {} ms", (System.nanoTime() - start) / 1_000_000);
      } catch (TimeoutException e) {
        log.warn("Vert.x did not close within {} s", limitSeconds);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } catch (Exception e) {
        log.warn("Stopping failed", e);
      }
    }, "duet-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    return hook;
  }

  /**
   * Undeploys every deployment at once, each once (a child deployment, such as the proxy's HTTP
   * servers, with its parent: undeploying it as well fails), then closes {@code vertx}, which
   * leaves the cluster. Fails when a deployment's stop failed, once Vert.x is closed.
   */
  static Future<Void> stop(Vertx vertx) {
    // Not undeployAll().eventually(close): undeployAll's future belongs to an event loop, which
    // the close stops before that future could call back.
    Promise<Void> stopped = Promise.promise();
    ((VertxInternal) vertx).deploymentManager().undeployAll().onComplete(undeployed ->
        vertx.close().onComplete(closed -> stopped.handle(undeployed.failed() ? undeployed
            : closed)));
    return stopped.future();
  }

  private static String resolve(String host) {
    try {
      return InetAddress.getByName(host).getHostAddress();
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException("cluster.host " + host + " does not resolve", e);
    }
  }
}
