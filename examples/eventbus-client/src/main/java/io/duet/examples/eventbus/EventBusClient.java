package io.duet.examples.eventbus;

import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.NetworkConfig;
import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.spi.cluster.hazelcast.HazelcastClusterManager;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * A Vert.x application that asks a Duet cluster for one completion over the event bus: it joins
 * the cluster, sends the request, prints the text on stdout as it streams in, then a last line
 * {@code [finish_reason=... prompt_tokens=... completion_tokens=...]} (or {@code [failure=...]}),
 * and exits: 0 when the completion ended, or was cancelled as {@code --cancel-after} asked; 1
 * otherwise; 2 for a bad command line. Vert.x and Hazelcast log on stderr. It needs nothing of
 * Duet but the contract module ({@link CompletionClient} speaks it).
 *
 * <p>Hazelcast runs faster with {@code --add-opens} flags for its internal API access (it names
 * them in a warning at start-up) but works without them; see the README for the command.
 */
public final class EventBusClient {

  private static final String HOST = "127.0.0.1";
  /** The proxy's default request deadline: no completion runs longer. */
  private static final long TIMEOUT_SECONDS = 600;

  private EventBusClient() {
  }

  public static void main(String[] args) throws Exception {
    Options options;
    try {
      options = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      System.err.print(Options.USAGE);
      System.exit(2);
      return;
    }
    System.exit(run(options));
  }

  private static int run(Options options) throws Exception {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    VertxOptions vertxOptions = new VertxOptions();
    // With a Hazelcast public address set, Vert.x would bind the event bus elsewhere.
    vertxOptions.getEventBusOptions().setHost(HOST);
    Vertx vertx = Vertx.builder().with(vertxOptions)
        .withClusterManager(new HazelcastClusterManager(hazelcast(options)))
        .buildClustered().await(TIMEOUT_SECONDS, TimeUnit.SECONDS);
    try {
      CompletionClient client = new CompletionClient(options, out);
      vertx.deployVerticle(client).await(TIMEOUT_SECONDS, TimeUnit.SECONDS);
      DecodeEvent last = client.last().await(TIMEOUT_SECONDS, TimeUnit.SECONDS);
      out.println();
      out.println(summary(last));
      boolean cancelledAsAsked = options.cancelAfter() > 0
          && Failure.CANCELLED.name().equals(last.failure());
      return last.failure() == null || cancelledAsAsked ? 0 : 1;
    } catch (Exception e) {
      out.println();
      out.println("[" + failure(Failure.of(e).name(), Failure.text(e)) + "]");
      return 1;
    } finally {
      // Leaves the cluster at once rather than when the members miss this one's heartbeats.
      vertx.close().await(TIMEOUT_SECONDS, TimeUnit.SECONDS);
    }
  }

  private static String summary(DecodeEvent last) {
    String end = last.failure() == null ? "finish_reason=" + last.finishReason()
        : failure(last.failure(), last.error());
    return "[" + end + " prompt_tokens=" + last.promptTokens() + " completion_tokens="
        + last.completionTokens() + "]";
  }

  private static String failure(String name, String error) {
    return "failure=" + name + " error=\"" + error + "\"";
  }

  /** As the Duet services configure Hazelcast: TCP-IP join over loopback, no multicast. */
  private static Config hazelcast(Options options) {
    Config hz = new Config();
    hz.setClusterName(options.clusterName());
    // A client holds no cluster data, so its joining and leaving moves no partitions.
    hz.setLiteMember(true);
    hz.setProperty("hazelcast.phone.home.enabled", "false");
    hz.setProperty("hazelcast.socket.bind.any", "false");
    hz.setProperty("hazelcast.tcp.join.port.try.count", String.valueOf(options.portCount()));
    NetworkConfig network = hz.getNetworkConfig();
    network.setPort(options.port()).setPortAutoIncrement(true).setPortCount(options.portCount());
    network.setPublicAddress(HOST);
    network.getInterfaces().setEnabled(true).addInterface(HOST);
    JoinConfig join = network.getJoin();
    join.getMulticastConfig().setEnabled(false);
    join.getAutoDetectionConfig().setEnabled(false);
    join.getTcpIpConfig().setEnabled(true).setMembers(options.members());
    return hz;
  }
}
