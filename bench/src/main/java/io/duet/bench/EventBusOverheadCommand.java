package io.duet.bench;

import io.duet.bench.impl.EventStream;
import io.duet.bench.impl.Futures;
import io.duet.bench.impl.Latency;
import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Table;
import io.duet.cluster.ClusterBootstrap;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.DecodeEvent;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The event bus's cost per streamed token: {@link DecodeEvent} JSON messages sent as a decode
 * instance sends them, with the proxy's credit protocol, between two verticles of one local
 * Vert.x (the embedded 1P1D) and between two clustered Vert.x instances (Hazelcast, event bus
 * over loopback TCP) in this JVM. Each bus is measured with the credit window (events in
 * flight, the stream as it runs when decode outpaces the proxy) and with a window of 1 (one
 * event at a time: the unloaded one-way latency).
 */
@Command(name = "eventbus-overhead", mixinStandardHelpOptions = true,
    description = "One-way latency and cost per message of DecodeEvent streams on the local "
        + "and the clustered event bus.")
final class EventBusOverheadCommand extends BenchCommand {

  private static final double US = 1e3;

  @Option(names = "--messages", description = "measured messages per stream (default: ${DEFAULT-VALUE})")
  int messages = 20_000;

  @Option(names = "--warmup", description = "unmeasured messages before each stream "
      + "(default: ${DEFAULT-VALUE}, capped to --messages)")
  int warmup = 5_000;

  @Option(names = "--window", description = "credit window: events in flight (default: "
      + "${DEFAULT-VALUE}, the proxy's stream-credits)")
  int window = Settings.PROXY_STREAM_CREDITS.defaultValue();

  private record Row(String bus, int window, EventStream.Result result) {
  }

  @Override
  public Integer call() throws Exception {
    requirePositive(messages, "--messages");
    requirePositive(window, "--window");
    requireNotNegative(warmup, "--warmup");
    int[] windows = window == 1 ? new int[] {1} : new int[] {window, 1};
    Progress progress = progress(1 + 2 * windows.length);
    List<Row> rows = new ArrayList<>();

    Vertx local = Vertx.vertx();
    try {
      for (int w : windows) {
        progress.phase("local event bus, window " + w);
        rows.add(new Row("local (one Vert.x)", w, stream(local, local, "local-w" + w, w)));
      }
    } finally {
      Futures.await(local.close(), 30);
    }

    progress.phase("starting two clustered Vert.x (Hazelcast on 127.0.0.1)");
    DuetConfig config = clusterConfig();
    long startNanos = System.nanoTime();
    List<Vertx> members = new ArrayList<>();
    double startupSeconds;
    try {
      // One after the other: two members starting together may both elect themselves master.
      members.add(Futures.await(ClusterBootstrap.start(config), 60));
      members.add(Futures.await(ClusterBootstrap.start(config), 60));
      startupSeconds = (System.nanoTime() - startNanos) / 1e9;
      for (int w : windows) {
        progress.phase("clustered event bus, window " + w);
        rows.add(new Row("clustered (2 members, TCP)", w,
            stream(members.get(0), members.get(1), "cluster-w" + w, w)));
      }
    } finally {
      for (Vertx member : members) {
        Futures.await(member.close(), 30);
      }
    }
    progress.done();
    report(rows, startupSeconds);
    return 0;
  }

  private EventStream.Result stream(Vertx sender, Vertx receiver, String tag, int w)
      throws Exception {
    int warm = Math.min(warmup, messages);
    if (warm > 0) {
      Futures.await(EventStream.run(sender, receiver, tag + "-warmup", warm, w), 120);
    }
    return Futures.await(EventStream.run(sender, receiver, tag, messages, w), 120);
  }

  /** A private cluster: its own name and port range, so no stray member can join. */
  private static DuetConfig clusterConfig() {
    int base = 20_000 + 20 * ThreadLocalRandom.current().nextInt(2_000);
    return DuetConfig.defaults()
        .with(Settings.CLUSTER_NAME, "duet-bench-" + UUID.randomUUID())
        .with(Settings.CLUSTER_HOST, "127.0.0.1")
        .with(Settings.CLUSTER_PORT, base)
        .with(Settings.CLUSTER_PORT_COUNT, 10)
        .with(Settings.CLUSTER_MEMBERS, List.of("127.0.0.1"));
  }

  private void report(List<Row> rows, double startupSeconds) throws Exception {
    PrintWriter out = out();
    int bytes = new DecodeEvent("local-w1", 12345, " the", 1, 12346, 128, null, null, null)
        .toJson().encode().length();
    out.printf("eventbus-overhead: %d DecodeEvent JSON messages per stream (about %d bytes "
            + "encoded) after %d warm-up; credit grants of half the window, as the proxy "
            + "grants them; one-way latency = send to receive, both timed in this JVM%n",
        messages, bytes, Math.min(warmup, messages));
    out.println(machine());
    out.println();
    Table table = new Table(1, "event bus", "window", "messages", "us/msg (wall)",
        "one-way mean us", "p50 us", "p90 us", "p99 us", "max us");
    JsonArray json = new JsonArray();
    for (Row row : rows) {
      Latency l = row.result().oneWay();
      table.row(row.bus(), row.window(), row.result().messages(),
          Table.num(row.result().microsPerMessage(), 2), Table.num(l.mean(US), 1),
          Table.num(l.percentile(50, US), 1), Table.num(l.percentile(90, US), 1),
          Table.num(l.percentile(99, US), 1), Table.num(l.max(US), 1));
      json.add(new JsonObject().put("bus", row.bus()).put("window", row.window())
          .put("messages", row.result().messages())
          .put("microsPerMessageWall", row.result().microsPerMessage())
          .put("oneWayMicros", l.toJson(US)));
    }
    table.print(out);
    out.printf("cluster start-up (two Hazelcast members, one after the other): %.1f s%n",
        startupSeconds);
    out.flush();
    writeJson(new JsonObject().put("command", "eventbus-overhead").put("machine", machineJson()).put("messages", messages)
        .put("warmup", Math.min(warmup, messages)).put("window", window)
        .put("messageBytes", bytes).put("clusterStartupSeconds", startupSeconds)
        .put("streams", json));
  }
}
