package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * A soak: clients send a mix of requests to a proxy, a decode instance and two prefill instances
 * (separate JVMs) for a while: short and long prompts, one to a few hundred tokens, streaming and
 * not, and some streams cancelled by their client after the first event. Midway one prefill
 * instance is stopped (SIGTERM: it drains) and started again. Every request that was not
 * cancelled must complete with the engine's text; afterwards no KV block or lease is held.
 *
 * <p>The resident memory of each JVM is sampled throughout and printed: after warm-up, at the
 * end, and its growth per minute. CI runs it for {@value #DEFAULT_SECONDS} s; a long run
 * ({@code -Dsoak.seconds=1800}, figures in {@code docs/reliability.md}) also asserts that the
 * memory of every process that ran throughout stays flat after warm-up.
 */
class SoakIT {

  private static final int DEFAULT_SECONDS = 60;
  private static final int SECONDS = Integer.getInteger("soak.seconds", DEFAULT_SECONDS);
  private static final int CLIENTS = Integer.getInteger("soak.clients", 4);
  /** From this run length on, memory growth is asserted, not only reported. */
  private static final int LONG_RUN_SECONDS = 600;
  /** How much a process may grow per minute after warm-up in a long run. */
  private static final double FLAT_MIB_PER_MINUTE = 1.0;
  private static final double CANCELLED_SHARE = 0.1;
  private static final List<String> INSTANCES = List.of("p0", "p1", "d0", "c0");
  private static final Duration READY_TIMEOUT = Duration.ofSeconds(150);
  private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration EXIT_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration SAMPLE_PERIOD = Duration.ofSeconds(2);
  private static final List<String> PROMPTS = List.of("Hi",
      "Once upon a time, in a land far away, there lived a small robot who loved to dream",
      "The network ".repeat(60), "Whispers of the stars and silicon memory ".repeat(40));
  private static final List<Integer> LENGTHS = List.of(1, 16, 64, 300);
  private static final Figures FIGURES = new Figures("SoakIT");

  private static ChildJvms jvms;
  private static TopologyCluster cluster;
  /** The engine's text for each request of the mix. */
  private static Map<String, String> expected;

  @RegisterExtension
  static final TestWatcher DUMP_LOGS_ON_FAILURE = ChildJvms.dumpingLogsOnFailure(() -> jvms);

  @BeforeAll
  static void startCluster() throws Exception {
    jvms = new ChildJvms("SoakIT", ItPaths.targetDir().resolve("it-logs/soak"));
    LongContextModel.Topology topology = LongContextModel.topology(jvms, "soak-it-", INSTANCES,
        "instance:\n  drain-timeout-seconds: 20", requests());
    cluster = topology.cluster();
    expected = topology.expected();
    long start = System.nanoTime();
    cluster.startOneByOne(READY_TIMEOUT);
    FIGURES.millisSince("four JVMs started and served the model in %d ms", start);
  }

  @AfterAll
  static void stopCluster() throws Exception {
    if (jvms != null) {
      jvms.close();
    }
    FIGURES.print();
  }

  @Test
  void mixedLoadWithCancellationsAndARestartFailsNothingAndLeaksNothing() throws Exception {
    long start = System.nanoTime();
    long end = start + TimeUnit.SECONDS.toNanos(SECONDS);
    List<Client> clients = new ArrayList<>();
    try (MemorySampler memory = new MemorySampler()) {
      try {
        for (int i = 0; i < CLIENTS; i++) {
          clients.add(new Client(i));
        }
        Waits.until("the soak's midpoint", () -> System.nanoTime() >= start + (end - start) / 2,
            Duration.ofSeconds(SECONDS));
        // The clients run on while p1 is away and until it has served again, however long
        // that takes on a busy machine, and at least to the end of the soak.
        cluster.restart(cluster.get("p1"), EXIT_TIMEOUT, READY_TIMEOUT, FIGURES);
        Waits.until("the soak's end", () -> System.nanoTime() >= end,
            Duration.ofSeconds(SECONDS));
      } finally {
        for (Client client : clients) {
          client.stop();
        }
      }
      memory.stop();
      FIGURES.millisSince("the soak ran %d ms", start);
      int completed = clients.stream().mapToInt(client -> client.completed.get()).sum();
      int cancelled = clients.stream().mapToInt(client -> client.cancelled.get()).sum();
      FIGURES.note(completed + " requests completed with the engine's text, " + cancelled
          + " cancelled by their client, " + CLIENTS + " clients");
      memory.report();
      List<String> failures = new ArrayList<>();
      clients.forEach(client -> failures.addAll(client.failures));
      assertEquals(List.of(), failures, "of " + completed + " requests");
      assertTrue(completed > 0, "no request completed");
    }
    cluster.awaitNoKvHeld(REQUEST_TIMEOUT);
  }

  private static int proxyPort() {
    return cluster.get("c0").port();
  }

  private static List<JsonObject> requests() {
    return LongContextModel.greedyRequests(PROMPTS, LENGTHS);
  }

  /**
   * Sends random requests of the mix one after the other on a thread of its own until stopped: half of them streamed, of those a share closed by the client after the first event.
   */
  private static final class Client {
    private final Thread thread;
    private final Random random;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    private final AtomicBoolean stop = new AtomicBoolean();
    private final List<String> failures = new CopyOnWriteArrayList<>();
    private final AtomicInteger completed = new AtomicInteger();
    private final AtomicInteger cancelled = new AtomicInteger();

    Client(int index) {
      this.random = new Random(index);
      this.thread = new Thread(this::run, "soak-client-" + index);
      thread.setDaemon(true);
      thread.start();
    }

    private void run() {
      List<JsonObject> requests = requests();
      while (!stop.get()) {
        JsonObject request = requests.get(random.nextInt(requests.size()));
        try {
          if (random.nextBoolean()) {
            stream(request, random.nextDouble() < CANCELLED_SHARE);
          } else {
            post(request);
          }
        } catch (Exception e) {
          failures.add(request.encode() + ": " + e);
        }
      }
    }

    private void stream(JsonObject request, boolean cancel) throws Exception {
      SseStream stream = SseStream.open(proxyPort(), request);
      if (cancel) {
        Waits.until("the first event of a stream to cancel",
            () -> !stream.events().isEmpty() || stream.ended().isDone(), REQUEST_TIMEOUT);
        stream.close();
        cancelled.incrementAndGet();
        return;
      }
      try {
        stream.ended().get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      } catch (TimeoutException e) {
        stream.close();
        failures.add("no end within " + REQUEST_TIMEOUT + ": " + stream.describe());
        return;
      }
      check(request, stream.completed(), stream.text(), stream.describe());
    }

    private void post(JsonObject request) throws IOException, InterruptedException {
      HttpResponse<String> response = http.send(HttpRequest.newBuilder(
              URI.create("http://127.0.0.1:" + proxyPort() + "/v1/completions"))
          .timeout(REQUEST_TIMEOUT).header("Content-Type", "application/json")
          .POST(HttpRequest.BodyPublishers.ofString(request.encode())).build(),
          HttpResponse.BodyHandlers.ofString());
      boolean ok = response.statusCode() == 200;
      String text = ok ? new JsonObject(response.body()).getJsonArray("choices")
          .getJsonObject(0).getString("text") : "";
      check(request, ok, text, "HTTP " + response.statusCode() + " " + response.body());
    }

    private void check(JsonObject request, boolean ok, String text, String description) {
      if (ok && expected.get(request.encode()).equals(text)) {
        completed.incrementAndGet();
      } else {
        failures.add(request.encode() + ": " + description);
      }
    }

    void stop() throws InterruptedException {
      stop.set(true);
      thread.join(REQUEST_TIMEOUT.toMillis());
      assertTrue(!thread.isAlive(), thread.getName() + " did not stop");
    }
  }

  /**
   * Samples the resident memory of every child JVM (by its name, so a restarted instance is a
   * new series) on a thread of its own.
   */
  private static final class MemorySampler implements AutoCloseable {
    /** Samples of one JVM: when (s since the soak began) and resident KiB. */
    private record Series(List<long[]> samples) {
    }

    private final Map<String, Series> series = new ConcurrentHashMap<>();
    private final long start = System.nanoTime();
    private final Thread thread;
    private volatile boolean running = true;

    MemorySampler() {
      thread = new Thread(this::run, "soak-memory");
      thread.setDaemon(true);
      thread.start();
    }

    private void run() {
      while (running) {
        long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start);
        for (ChildJvms.Child child : jvms.children()) {
          ProcessMemory.residentKib(child.process().pid()).ifPresent(kib -> series
              .computeIfAbsent(child.name(), name -> new Series(new CopyOnWriteArrayList<>()))
              .samples().add(new long[] {seconds, kib}));
        }
        try {
          Thread.sleep(SAMPLE_PERIOD.toMillis()); // a sampling period, not a synchronisation
        } catch (InterruptedException e) {
          return;
        }
      }
    }

    void stop() throws InterruptedException {
      running = false;
      thread.interrupt();
      thread.join();
    }

    /**
     * Prints each JVM's memory after warm-up (the first third of the run) and at its end, and
     * the growth per minute between them; in a long run, fails when a JVM that ran throughout
     * grew faster than {@value #FLAT_MIB_PER_MINUTE} MiB per minute.
     */
    void report() {
      List<String> grew = new ArrayList<>();
      long warmUp = SECONDS / 3;
      series.forEach((name, of) -> {
        List<long[]> after = of.samples().stream().filter(sample -> sample[0] >= warmUp).toList();
        if (after.size() < 2) {
          return;
        }
        long[] first = after.get(0);
        long[] last = after.get(after.size() - 1);
        double minutes = Math.max(1, last[0] - first[0]) / 60.0;
        double perMinute = (last[1] - first[1]) / 1024.0 / minutes;
        FIGURES.note(String.format(java.util.Locale.ROOT,
            "%s resident memory %d MiB after warm-up (%d s), %d MiB at %d s: %+.2f MiB/min",
            name, first[1] / 1024, first[0], last[1] / 1024, last[0], perMinute));
        boolean ranThroughout = first[0] - warmUp <= SAMPLE_PERIOD.toSeconds() * 2
            && last[0] >= SECONDS - SAMPLE_PERIOD.toSeconds() * 2;
        if (ranThroughout && perMinute > FLAT_MIB_PER_MINUTE) {
          grew.add(name + String.format(java.util.Locale.ROOT, " %+.2f MiB/min", perMinute));
        }
      });
      if (SECONDS >= LONG_RUN_SECONDS) {
        assertEquals(List.of(), grew, "processes whose memory grew after warm-up");
      }
    }

    @Override
    public void close() throws InterruptedException {
      stop();
    }
  }
}
