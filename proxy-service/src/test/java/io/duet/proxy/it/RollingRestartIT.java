package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.service.StatusPages;
import io.vertx.core.json.JsonObject;
import java.net.ConnectException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * A rolling restart with no failed request: a topology of two proxies, two prefill and two
 * decode instances, each its own JVM from the packaged jars, started from one topology file;
 * clients stream completions through both proxies the whole time while every process in turn is
 * stopped with SIGTERM and started again, the next one only once it serves again.
 *
 * <p>A client does what a load balancer does and nothing more: when its proxy refuses the
 * connection (it is stopping, or not started yet) it sends the request to the other proxy. Every
 * stream that started must complete with the engine's own text. Each decode instance and each
 * proxy is stopped while it runs streams, so that its drain is what the test exercises.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class RollingRestartIT {

  /** Stopping, in the order they are restarted. */
  private static final List<String> INSTANCES = List.of("p0", "p1", "d0", "d1", "c0", "c1");
  private static final int DRAIN_TIMEOUT_SECONDS = 15;
  private static final Duration READY_TIMEOUT = Duration.ofSeconds(150);
  private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration EXIT_TIMEOUT = Duration.ofSeconds(DRAIN_TIMEOUT_SECONDS + 25);
  private static final int CLIENTS = 3;
  private static final List<String> PROMPTS = List.of("Once upon a time", "The robot",
      "Whispers");
  /** Long streams that a stop falls in the middle of, and short ones between them. */
  private static final List<Integer> LENGTHS = List.of(400, 40);
  private static final Pattern RUNNING = StatusPages.metricPattern("duet_decode_running", "");
  private static final Pattern IN_FLIGHT =
      StatusPages.metricPattern("duet_requests_in_flight", "");
  private static final Figures FIGURES = new Figures("RollingRestartIT");

  private static ChildJvms jvms;
  private static StatusPages pages;
  private static TopologyCluster cluster;
  /** The engine's text for each request the clients send. */
  private static Map<String, String> EXPECTED;

  @RegisterExtension
  static final TestWatcher DUMP_LOGS_ON_FAILURE = ChildJvms.dumpingLogsOnFailure(() -> jvms);

  @BeforeAll
  static void startCluster() throws Exception {
    jvms = new ChildJvms("RollingRestartIT",
        ItPaths.targetDir().resolve("it-logs/rolling-restart"));
    LongContextModel.Topology topology = LongContextModel.topology(jvms, "rolling-restart-it-",
        INSTANCES, "instance:\n  drain-timeout-seconds: " + DRAIN_TIMEOUT_SECONDS, requests());
    cluster = topology.cluster();
    EXPECTED = topology.expected();
    pages = new StatusPages();

    long start = System.nanoTime();
    cluster.startOneByOne(READY_TIMEOUT);
    FIGURES.millisSince("six JVMs started one after the other and served the model in %d ms",
        start);
  }

  @AfterAll
  static void stopCluster() throws Exception {
    if (jvms != null) {
      jvms.close();
    }
    FIGURES.print();
  }

  @Test
  void restartingEveryProcessInTurnWhileStreamsRunFailsNoRequest() throws Exception {
    long start = System.nanoTime();
    List<StreamingClient> clients = new ArrayList<>();
    try {
      for (int i = 0; i < CLIENTS; i++) {
        clients.add(new StreamingClient(i));
      }
      for (String name : INSTANCES) {
        restart(cluster.get(name));
      }
      int completedBefore = completed(clients);
      Waits.until("a stream after the last restart", () -> completed(clients)
          > completedBefore + CLIENTS, REQUEST_TIMEOUT);
    } finally {
      for (StreamingClient client : clients) {
        client.close();
      }
    }
    FIGURES.millisSince("the rolling restart of six processes took %d ms", start);
    List<String> failures = new ArrayList<>();
    clients.forEach(client -> failures.addAll(client.failures));
    int moved = clients.stream().mapToInt(client -> client.movedToTheOtherProxy.get()).sum();
    int resent = clients.stream()
        .mapToInt(client -> client.resentAfterAnUnansweredClose.get()).sum();
    System.out.println("[RollingRestartIT] " + completed(clients) + " streams completed, " + moved
        + " sent to the other proxy after a refused connection, " + resent
        + " after a connection closed unanswered");
    assertEquals(List.of(), failures, "of " + completed(clients) + " streams");
    cluster.awaitNoKvHeld(REQUEST_TIMEOUT);
  }

  /**
   * Restarts {@code instance} once it runs a stream (a decode instance or a proxy), so that its
   * drain is what is tested.
   */
  private static void restart(TopologyCluster.Instance instance) throws Exception {
    if (instance.isProxy()) {
      Waits.until(instance.name() + " to run a stream",
          () -> pages.metric(instance.port(), IN_FLIGHT) > 0, REQUEST_TIMEOUT);
    } else if (instance.role().equals("decode")) {
      Waits.until(instance.name() + " to run a stream",
          () -> pages.metric(instance.port(), RUNNING) > 0, REQUEST_TIMEOUT);
    }
    cluster.restart(instance, EXIT_TIMEOUT, READY_TIMEOUT, FIGURES);
  }

  private static List<TopologyCluster.Instance> proxies() {
    return List.of(cluster.get("c0"), cluster.get("c1"));
  }

  private static List<JsonObject> requests() {
    return LongContextModel.greedyRequests(PROMPTS, LENGTHS);
  }

  private static int completed(List<StreamingClient> clients) {
    return clients.stream().mapToInt(client -> client.completed.get()).sum();
  }

  /**
   * Streams completions one after the other on a thread of its own until closed, each to the
   * proxies in turn, and to the other one when its proxy refuses the connection. A stream that
   * does not complete with the engine's text, or that both proxies refuse, is a failure.
   */
  private static final class StreamingClient implements AutoCloseable {
    private final int index;
    private final Thread thread;
    private final AtomicBoolean stop = new AtomicBoolean();
    private final List<String> failures = new CopyOnWriteArrayList<>();
    private final AtomicInteger completed = new AtomicInteger();
    private final AtomicInteger movedToTheOtherProxy = new AtomicInteger();
    private final AtomicInteger resentAfterAnUnansweredClose = new AtomicInteger();

    StreamingClient(int index) {
      this.index = index;
      this.thread = new Thread(this::run, "rolling-restart-client-" + index);
      thread.setDaemon(true);
      thread.start();
    }

    private void run() {
      List<JsonObject> requests = requests();
      for (int n = index; !stop.get(); n++) {
        JsonObject request = requests.get(n % requests.size());
        List<TopologyCluster.Instance> proxies = proxies();
        TopologyCluster.Instance first = proxies.get(n % 2);
        TopologyCluster.Instance other = proxies.get((n + 1) % 2);
        try {
          SseStream stream;
          try {
            stream = SseStream.open(first.port(), request);
          } catch (ConnectException refused) {
            movedToTheOtherProxy.incrementAndGet();
            stream = SseStream.open(other.port(), request);
          }
          if (closedUnanswered(stream)) {
            // A proxy that stops may close a connection it accepted in its last moment before
            // reading the request (see docs/reliability.md); nothing of it ran, so the client
            // sends it again, as the official OpenAI clients do after a connection error.
            resentAfterAnUnansweredClose.incrementAndGet();
            stream = SseStream.open(other.port(), request);
          }
          check(stream);
        } catch (Exception e) {
          failures.add(request.encode() + ": " + e);
        }
      }
    }

    /** Whether the connection ended before any byte of a response came. */
    private static boolean closedUnanswered(SseStream stream) throws Exception {
      try {
        stream.ended().get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      } catch (TimeoutException stillRunning) {
        return false; // check() reports it
      }
      return stream.status() == 0;
    }

    private void check(SseStream stream) throws Exception {
      try {
        stream.ended().get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      } catch (TimeoutException e) {
        stream.close();
        failures.add("no end within " + REQUEST_TIMEOUT + ": " + stream.describe());
        return;
      }
      String expected = EXPECTED.get(stream.request().encode());
      if (stream.completed() && expected.equals(stream.text())) {
        completed.incrementAndGet();
      } else {
        failures.add(stream.request().encode() + ": " + stream.describe());
      }
    }

    @Override
    public void close() throws InterruptedException {
      stop.set(true);
      thread.join(REQUEST_TIMEOUT.toMillis());
      assertTrue(!thread.isAlive(), "client " + index + " did not stop");
    }
  }
}
