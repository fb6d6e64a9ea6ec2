package io.duet.deploy;

import static io.duet.service.StatusPages.DECODE_RUNNING;
import static io.duet.service.StatusPages.KV_BLOCKS_USED;
import static io.duet.service.StatusPages.KV_LEASES;
import static io.duet.service.StatusPages.PREFILL_PROMPTS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.duet.deploy.LaunchedTopology.Run;
import io.duet.deploy.impl.LaunchRecord;
import io.duet.engine.Engine;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.service.ServiceTests;
import io.duet.service.StatusPages;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The xP1D acceptance test of issue 11, through the real cluster: {@code duet.jar up} of a 2P1D
 * whose decode instance has 2 ranks ({@code dp: 2}), from the packaged jars, on aidreams260K,
 * with ports and a cluster of its own. Greedy output through its proxy equals the engine alone;
 * round robin alternates the prefill instances; prefix affinity, switched on by a reload, sends
 * prompts that begin alike to one prefill instance, whose prefix cache then hits; with a rank cap
 * of 2, 12 concurrent requests never put more than 2 on a rank, some wait in the proxy's queue,
 * and all complete; a cap raised by a reload while requests wait takes effect and fails none.
 *
 * <p>Everything is observed from outside, as an operator would: each prefill instance's prompt
 * and prefix-cache counters, the proxy's per-rank in-flight gauge and queue, the ranks' own
 * running gauges, all read from their {@code /metrics}, and the proxy's log. Each test starts from
 * the proxy settings the cluster started with and ends with no KV held on any instance or rank.
 * At the end {@code duet.jar down} must leave no process; every process is killed whatever
 * happened. The figures the tests measure are printed at the end; the instances' logs stay in
 * {@code target/xponedecodeit-*}/logs.
 */
class XpOneDecodeIT {

  /**
   * The ports of the topology, from its first: 4 cluster ports, the proxy's, p0's KV and status,
   * p1's, and the status ports of d0's 2 ranks.
   */
  private static final int PORTS = 11;
  private static final int PROXY = 4;
  private static final int P0_STATUS = 6;
  private static final int P1_STATUS = 8;
  private static final int RANK0_STATUS = 9;
  private static final int RANKS = 2;
  /** The proxy's settings the cluster starts with, and each test begins from. */
  private static final String ROUND_ROBIN_CAP_2 = "prefill-policy: round-robin, "
      + "decode-policy: least-load, decode-rank-cap: 2, queue-size: 64";
  private static final String MODEL = "deepseek";
  /** The context of aidreams260K is 128 tokens: a short prompt and this many fit. */
  private static final int LONG_ANSWER_TOKENS = 100;
  private static final List<String> PROMPTS = List.of("how are you?", "Once upon a time",
      "The robot", "In the quiet lab, a", "Pixels", "A dream of");
  private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration IDLE_TIMEOUT = Duration.ofSeconds(10);
  private static final Duration RELOAD_LOG_TIMEOUT = Duration.ofSeconds(5);
  private static final Duration POLL = Duration.ofMillis(10);

  private static final Pattern CACHE_HITS =
      StatusPages.metricPattern("duet_prefill_cached_prompt_tokens_total", "");
  private static final Pattern QUEUE_LENGTH =
      StatusPages.metricPattern("duet_routing_queue_length", "");
  private static final Pattern QUEUE_WAITS =
      StatusPages.metricPattern("duet_routing_queue_wait_seconds_count", "");
  private static final Pattern QUEUE_WAIT_SUM =
      StatusPages.metricPattern("duet_routing_queue_wait_seconds_sum", "");
  private static final Pattern PLACED_AT_MOST_1 = StatusPages.metricPattern(
      "duet_routing_decode_load_at_placement_bucket", "le=\"1.0\"");
  private static final Pattern PLACED_AT_MOST_2 = StatusPages.metricPattern(
      "duet_routing_decode_load_at_placement_bucket", "le=\"2.0\"");
  private static final Pattern PLACED =
      StatusPages.metricPattern("duet_routing_decode_load_at_placement_count", "");
  private static final Pattern AFFINITY_HITS =
      StatusPages.metricPattern("duet_routing_affinity_total", "outcome=\"hit\"");
  /** A line of the proxy's log for a reload that changed something: its trigger, the changes. */
  private static final Pattern RELOADED =
      Pattern.compile("configuration reloaded \\((.+?)\\): (?!no change)(.+)");
  private static final String POST_TRIGGER = "POST /admin/reload";

  private static LaunchedTopology launched;
  private static Engine reference;
  private static HttpClient http;
  private static StatusPages pages;
  private static int base;
  /** Whether {@code up} brought the topology up, for {@code down} to stop. */
  private static boolean running;
  /** The proxy's settings in the topology file now. */
  private static String proxySettings = ROUND_ROBIN_CAP_2;
  private static final List<String> FIGURES = new CopyOnWriteArrayList<>();

  // ------------------------------------------------------------------------------ lifecycle

  @BeforeAll
  static void upTheTopology() throws Exception {
    launched = new LaunchedTopology("XpOneDecodeIT");
    reference = Engine.open(ServiceTests.aidreams(64));
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    pages = new StatusPages(http);
    long start = System.nanoTime();
    Run up = launched.up("2p1d.yaml", PORTS, first -> topology(first, ROUND_ROBIN_CAP_2));
    assertEquals(0, up.exit(), up::out);
    running = true;
    FIGURES.add("duet.jar up of the 2P1D (5 JVMs) took " + millisSince(start) + " ms");
    base = launched.base();
    assertEquals(List.of("c0", "p0", "p1", "d0"), launched.record().started().stream()
        .map(LaunchRecord.Started::instance).toList(), up::out);
    await("the proxy to serve " + MODEL, () -> pages.servedModels(port(PROXY))
        .map(models -> models.contains(MODEL)).orElse(false), REQUEST_TIMEOUT);
  }

  /** {@code duet.jar down} stops every instance; whatever happened, nothing outlives the test. */
  @AfterAll
  static void downLeavesNoProcess() throws Exception {
    try {
      if (running) {
        List<LaunchRecord.Started> started = launched.record().started();
        Run down = launched.duet("down", launched.topology().toString());
        assertEquals(0, down.exit(), down::out);
        for (LaunchRecord.Started process : started) {
          assertFalse(process.process().map(ProcessHandle::isAlive).orElse(false),
              process.instance() + " (pid " + process.pid() + ") still runs after down");
        }
      }
    } finally {
      if (launched != null) {
        launched.close();
      }
      if (reference != null) {
        reference.close();
      }
      System.out.println("[XpOneDecodeIT] figures:\n  " + String.join("\n  ", FIGURES));
    }
  }

  @BeforeEach
  void proxySettingsAsStarted() throws Exception {
    if (!proxySettings.equals(ROUND_ROBIN_CAP_2)) {
      reconfigure(ROUND_ROBIN_CAP_2);
    }
  }

  /** No KV block or lease outlives a test, on any instance or rank. */
  @AfterEach
  void noKvHeldAnywhere() {
    List<Integer> engines = List.of(port(P0_STATUS), port(P1_STATUS), port(RANK0_STATUS),
        port(RANK0_STATUS + 1));
    for (int port : engines) {
      await("the instance on port " + port + " to hold no KV block",
          () -> pages.metric(port, KV_BLOCKS_USED) == 0, IDLE_TIMEOUT);
    }
    for (int port : List.of(port(P0_STATUS), port(P1_STATUS))) {
      await("the prefill instance on port " + port + " to hold no KV lease",
          () -> pages.metric(port, KV_LEASES) == 0, IDLE_TIMEOUT);
    }
  }

  // ------------------------------------------------------------------------------ tests

  /** Prompts sent together, batched on the ranks, each get the engine's own greedy text. */
  @Test
  void greedyOutputThroughTheClusterEqualsTheEngineAlone() throws Exception {
    List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
    for (String prompt : PROMPTS) {
      answers.add(complete(prompt, 40, false));
    }
    for (int i = 0; i < PROMPTS.size(); i++) {
      assertEquals(expected(PROMPTS.get(i), 40, false), text(answers.get(i)), PROMPTS.get(i));
    }
  }

  /** One request after the other: p0 and p1 take them in turn, as each one's counter shows. */
  @Test
  void roundRobinAlternatesThePrefillInstances() throws Exception {
    List<Integer> prefilledBy = new ArrayList<>();
    for (String prompt : PROMPTS) {
      double[] before = prefillCounts(PREFILL_PROMPTS);
      assertEquals(expected(prompt, 16, false), text(complete(prompt, 16, false)), prompt);
      prefilledBy.add(theOneThatCounted(before, prefillCounts(PREFILL_PROMPTS), 1));
    }
    int first = prefilledBy.get(0);
    assertEquals(IntStream.range(0, PROMPTS.size()).mapToObj(i -> (first + i) % 2).toList(),
        prefilledBy, "the prefill instance (0: p0, 1: p1) of each request in turn");
  }

  /**
   * Switched to prefix affinity by a reload, prompts that share their first 64 characters (the
   * key of 16 tokens) all go to one prefill instance, and there every one after the first finds
   * the shared blocks in the prefix cache.
   */
  @Test
  void prefixAffinitySwitchedOnByAReloadSendsPromptsThatBeginAlikeToOneCachingInstance()
      throws Exception {
    assertEquals("proxy.prefill-policy round-robin -> prefix-affinity, "
        + "proxy.prefill-policy-params {} -> {\"prefix-tokens\":\"16\"}",
        reconfigure(ROUND_ROBIN_CAP_2.replace("round-robin", "prefix-affinity")
            + ", prefill-policy-params: {prefix-tokens: 16}"));

    String prefix = "In a quiet lab full of humming machines and blinking lights, a small robot "
        + "named Pixel looked out of the window";
    List<String> endings = List.of(" and smiled.", " at the rain.", " for a friend.",
        " and sang.");
    double affinityHits = pages.metric(port(PROXY), AFFINITY_HITS);
    double[] cacheHits = prefillCounts(CACHE_HITS);
    List<Integer> prefilledBy = new ArrayList<>();
    for (String ending : endings) {
      double[] before = prefillCounts(PREFILL_PROMPTS);
      assertEquals(expected(prefix + ending, 16, false), text(complete(prefix + ending, 16,
          false)), ending);
      prefilledBy.add(theOneThatCounted(before, prefillCounts(PREFILL_PROMPTS), 1));
    }
    int chosen = prefilledBy.get(0);
    assertEquals(endings.stream().map(ending -> chosen).toList(), prefilledBy,
        "the prefill instance (0: p0, 1: p1) of each request");
    assertEquals(affinityHits + endings.size(), pages.metric(port(PROXY), AFFINITY_HITS));
    double[] hitsNow = prefillCounts(CACHE_HITS);
    FIGURES.add("prefix affinity: " + endings.size() + " prompts on p" + chosen + ", "
        + (hitsNow[chosen] - cacheHits[chosen]) + " prompt tokens found in its prefix cache");
    assertEquals(cacheHits[1 - chosen], hitsNow[1 - chosen], "no hit on the other instance");
    // Every prompt after the first finds at least one 16-token block of the prefix cached.
    assertTrue(hitsNow[chosen] - cacheHits[chosen] >= 16 * (endings.size() - 1),
        "prompt tokens found in the prefix cache: " + (hitsNow[chosen] - cacheHits[chosen]));
  }

  /**
   * 12 long requests at once under a cap of 2 per rank: no rank ever holds more than 2 of them,
   * in the proxy's count or its own, some wait in the proxy's queue, and all complete right.
   * The proxy's count is read from its histogram of the loads at placement, which sees every
   * placement; the ranks' own counts, from samples.
   */
  @Test
  void withARankCapOf2NoRankEverHoldsMoreThan2AndAll12Complete() throws Exception {
    double waits = pages.metric(port(PROXY), QUEUE_WAITS);
    double waited = pages.metric(port(PROXY), QUEUE_WAIT_SUM);
    double[] placedBefore = placementLoads();
    List<String> prompts = prompts(12);
    List<Sample> samples;
    try (Sampler sampler = new Sampler()) {
      assertEveryAnswerRight(prompts, sendLong(prompts));
      samples = sampler.samples();
    }
    double[] placedAfter = placementLoads();
    double placed = placedAfter[2] - placedBefore[2];
    double atMost1 = placedAfter[0] - placedBefore[0];
    double atMost2 = placedAfter[1] - placedBefore[1];
    FIGURES.add("12 requests under a cap of 2: " + describe(samples) + "; " + placed
        + " placements, " + atMost1 + " on a rank with no other");
    assertTrue(placed >= prompts.size(), "every request is placed: " + placed);
    assertEquals(placed, atMost2, "no placement leaves a rank above the cap of 2");
    assertTrue(atMost1 < placed, "some placement makes a rank's second request");
    for (int rank = 0; rank < RANKS; rank++) {
      assertTrue(peak(samples, rank, Sample::running) <= 2, "rank " + rank + "'s own count: "
          + samples);
    }
    // A request waits only while every rank holds 2.
    assertEquals(waits + prompts.size(), pages.metric(port(PROXY), QUEUE_WAITS),
        "every request counts once in the queue's wait");
    assertTrue(pages.metric(port(PROXY), QUEUE_WAIT_SUM) > waited, "some request waited");
  }

  /**
   * With a cap of 1, requests wait in the proxy; a reload raising it to 4 gives them the slots it
   * opens at once, and every request completes right.
   */
  @Test
  void aCapRaisedByAReloadWhileRequestsWaitTakesEffectWithoutAFailedRequest() throws Exception {
    String capOf = ROUND_ROBIN_CAP_2.replace("decode-rank-cap: 2", "decode-rank-cap: %d");
    assertEquals("proxy.decode-rank-cap 2 -> 1", reconfigure(capOf.formatted(1)));
    // So many that, 1 per rank at a time, the queue lasts well beyond the reload.
    List<String> prompts = prompts(24);
    List<Sample> samples;
    long reloadSent;
    long reloadApplied;
    try (Sampler sampler = new Sampler()) {
      List<CompletableFuture<HttpResponse<String>>> answers = sendLong(prompts);
      await("requests to wait in the proxy's queue",
          () -> pages.metric(port(PROXY), QUEUE_LENGTH) >= 16, REQUEST_TIMEOUT);
      reloadSent = System.nanoTime();
      assertEquals("proxy.decode-rank-cap 1 -> 4", reconfigure(capOf.formatted(4)));
      reloadApplied = System.nanoTime();
      assertEveryAnswerRight(prompts, answers);
      samples = sampler.samples();
    }
    List<Sample> before = samples.stream().filter(s -> s.nanos() < reloadSent).toList();
    List<Sample> after = samples.stream().filter(s -> s.nanos() > reloadApplied).toList();
    FIGURES.add(prompts.size() + " requests under a cap of 1, before the reload to 4: "
        + describe(before) + "; after: " + describe(after) + "; the reload (file and POST) took "
        + (reloadApplied - reloadSent) / 1_000_000 + " ms");
    for (int rank = 0; rank < RANKS; rank++) {
      assertEquals(1, peak(before, rank, Sample::inFlight), "rank " + rank + " under a cap of 1: "
          + before);
      assertTrue(peak(after, rank, Sample::inFlight) <= 4, "rank " + rank + ": " + after);
    }
    assertTrue(IntStream.range(0, RANKS).anyMatch(rank -> peak(after, rank, Sample::inFlight) > 1),
        "the raised cap put more than 1 request on a rank: " + after);
  }

  // ------------------------------------------------------------------------------ the topology

  /** The 2P1D on the ports from {@code first}, the proxy with {@code proxySettings}. */
  private static String topology(int first, String proxySettings) {
    return launched.smallCluster() + """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: %d,
               proxy: {port: %d, http-instances: 1, %s}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          p1: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: %d,
               decode: {dp: %d, http-port: %d}}
        """.formatted(first, first + PROXY, proxySettings, first + 1, first + 5,
        first + P0_STATUS, first + 2, first + 7, first + P1_STATUS, first + 3, RANKS,
        first + RANK0_STATUS);
  }

  private static int port(int offset) {
    return base + offset;
  }

  /**
   * Rewrites the proxy's settings in the topology file and asks the proxy to reload
   * ({@code POST /admin/reload}); returns the changes it reports, as its log writes them. The
   * proxy also reloads by itself when it sees the file change (it looks every second): when that
   * comes first, the POST finds nothing left to change and answers so, and the log says what
   * the change of the file did.
   */
  private static String reconfigure(String settings) throws Exception {
    Path log = launched.log("c0");
    long logged = log.toFile().length();
    launched.rewrite(topology(base, settings));
    proxySettings = settings;
    HttpResponse<String> answer = http.send(HttpRequest.newBuilder(StatusPages.uri(port(PROXY),
            "/admin/reload")).timeout(REQUEST_TIMEOUT)
        .POST(HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, answer.statusCode(), answer::body);
    JsonObject reply = new JsonObject(answer.body());
    assertEquals("applied", reply.getString("status"), answer::body);
    assertEquals(new JsonArray(), reply.getJsonArray("restartRequired"), answer::body);
    String replied = reply.getJsonArray("changes").stream().map(JsonObject.class::cast)
        .map(change -> change.getString("key") + " " + change.getString("old") + " -> "
            + change.getString("new")).collect(Collectors.joining(", "));

    Matcher reloaded = RELOADED.matcher("");
    await("the proxy to log what the reload changed",
        () -> reloaded.reset(logSince(log, logged)).find(), RELOAD_LOG_TIMEOUT);
    String trigger = reloaded.group(1);
    String changes = reloaded.group(2).trim();
    assertEquals(trigger.equals(POST_TRIGGER) ? changes : "", replied,
        "the reply to the POST, the log saying: " + reloaded.group());
    return changes;
  }

  /** What {@code log} holds from byte {@code offset} on. */
  private static String logSince(Path log, long offset) {
    try (RandomAccessFile file = new RandomAccessFile(log.toFile(), "r")) {
      byte[] bytes = new byte[(int) Math.max(0, file.length() - offset)];
      file.seek(offset);
      file.readFully(bytes);
      return new String(bytes, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new AssertionError("cannot read " + log, e);
    }
  }

  // ------------------------------------------------------------------------------ requests

  /** A greedy completion through the proxy, sent now; {@code ignoreEos} makes it run long. */
  private static CompletableFuture<HttpResponse<String>> complete(String prompt, int maxTokens,
      boolean ignoreEos) {
    JsonObject request = new JsonObject().put("model", MODEL).put("prompt", prompt)
        .put("temperature", 0).put("max_tokens", maxTokens).put("ignore_eos", ignoreEos);
    return http.sendAsync(HttpRequest.newBuilder(StatusPages.uri(port(PROXY), "/v1/completions"))
        .timeout(REQUEST_TIMEOUT).header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(request.encode())).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** The engine's own greedy text for {@code prompt}. */
  private static String expected(String prompt, int maxTokens, boolean ignoreEos) {
    return new OfflineGenerator(reference, 1).generate(reference.tokenizer().encode(prompt, true),
        SamplingParams.greedy(maxTokens).withIgnoreEos(ignoreEos)).text();
  }

  /** The text of a completion that must have succeeded. */
  private static String text(CompletableFuture<HttpResponse<String>> answer) throws Exception {
    HttpResponse<String> response = answer.get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    assertEquals(200, response.statusCode(), response::body);
    return new JsonObject(response.body()).getJsonArray("choices").getJsonObject(0)
        .getString("text");
  }

  /** {@code count} prompts, {@link #PROMPTS} over and over. */
  private static List<String> prompts(int count) {
    return IntStream.range(0, count).mapToObj(i -> PROMPTS.get(i % PROMPTS.size())).toList();
  }

  /** Every prompt at once, each asking for {@value #LONG_ANSWER_TOKENS} tokens. */
  private static List<CompletableFuture<HttpResponse<String>>> sendLong(List<String> prompts) {
    return prompts.stream().map(prompt -> complete(prompt, LONG_ANSWER_TOKENS, true)).toList();
  }

  private static void assertEveryAnswerRight(List<String> prompts,
      List<CompletableFuture<HttpResponse<String>>> answers) throws Exception {
    for (int i = 0; i < prompts.size(); i++) {
      assertEquals(expected(prompts.get(i), LONG_ANSWER_TOKENS, true), text(answers.get(i)),
          "request " + i + ": " + prompts.get(i));
    }
  }

  // ------------------------------------------------------------------------------ observing

  /**
   * The proxy's placements so far that left their rank with at most 1 request, at most 2, and
   * all of them (read while no request runs: the histogram's parts are not read atomically).
   */
  private static double[] placementLoads() {
    return new double[] {pages.metric(port(PROXY), PLACED_AT_MOST_1),
        pages.metric(port(PROXY), PLACED_AT_MOST_2), pages.metric(port(PROXY), PLACED)};
  }

  /** A counter of p0 and of p1. */
  private static double[] prefillCounts(Pattern counter) {
    return new double[] {pages.metric(port(P0_STATUS), counter),
        pages.metric(port(P1_STATUS), counter)};
  }

  /** Which prefill instance (0: p0, 1: p1) counted {@code by} more; the other must not have. */
  private static int theOneThatCounted(double[] before, double[] after, double by) {
    for (int p = 0; p < 2; p++) {
      if (after[p] == before[p] + by && after[1 - p] == before[1 - p]) {
        return p;
      }
    }
    return fail("p0 counted " + before[0] + " -> " + after[0] + ", p1 " + before[1] + " -> "
        + after[1] + ": not one of them " + by + " more");
  }

  /**
   * The proxy's in-flight count and queue and each rank's running count at one moment (read one
   * after the other within a few milliseconds).
   */
  private record Sample(long nanos, int[] inFlight, int[] running, int queued) {

    int inFlight(int rank) {
      return inFlight[rank];
    }

    int running(int rank) {
      return running[rank];
    }

    @Override
    public String toString() {
      return "in flight " + List.of(inFlight[0], inFlight[1]) + ", running "
          + List.of(running[0], running[1]) + ", queued " + queued;
    }
  }

  /** The highest count {@code of} a rank reached among {@code samples}. */
  private static int peak(List<Sample> samples, int rank, RankCount of) {
    return samples.stream().mapToInt(sample -> of.count(sample, rank)).max().orElse(0);
  }

  /** The peaks of {@code samples}, for the figures. */
  private static String describe(List<Sample> samples) {
    return IntStream.range(0, RANKS).mapToObj(rank -> "rank " + rank + " at most "
        + peak(samples, rank, Sample::inFlight) + " in flight (proxy), "
        + peak(samples, rank, Sample::running) + " running (rank)")
        .collect(Collectors.joining(", ")) + ", at most " + samples.stream()
        .mapToInt(Sample::queued).max().orElse(0) + " queued, " + samples.size() + " samples";
  }

  private static long millisSince(long start) {
    return (System.nanoTime() - start) / 1_000_000;
  }

  /** A per-rank count of a sample. */
  private interface RankCount {
    int count(Sample sample, int rank);
  }

  /** Samples the counts on a thread of its own, every {@link #POLL}, until closed. */
  private static final class Sampler implements AutoCloseable {
    private final List<Sample> samples = new CopyOnWriteArrayList<>();
    private final List<Throwable> failures = new CopyOnWriteArrayList<>();
    private final Thread thread = new Thread(this::run, "xp1d-it-sampler");
    private volatile boolean stop;

    Sampler() {
      thread.setDaemon(true);
      thread.start();
    }

    private void run() {
      while (!stop) {
        try {
          samples.add(sample());
        } catch (RuntimeException | AssertionError e) {
          failures.add(e);
          return;
        }
        LockSupport.parkNanos(POLL.toNanos());
      }
    }

    private static Sample sample() {
      long now = System.nanoTime();
      int[] inFlight = new int[RANKS];
      int[] running = new int[RANKS];
      String proxy = pages.get(port(PROXY), "/metrics");
      for (int rank = 0; rank < RANKS; rank++) {
        inFlight[rank] = (int) value(proxy, StatusPages.metricPattern(
            "duet_routing_decode_in_flight", "rank=\"" + rank + "\""));
        running[rank] = (int) pages.metric(port(RANK0_STATUS + rank), DECODE_RUNNING);
      }
      return new Sample(now, inFlight, running, (int) value(proxy, QUEUE_LENGTH));
    }

    /** A metric of a page; 0 when it is not there yet (a rank the proxy never chose). */
    private static double value(String page, Pattern metric) {
      Matcher m = metric.matcher(page);
      return m.find() ? Double.parseDouble(m.group(1)) : 0;
    }

    /** The samples so far; fails when sampling failed. */
    List<Sample> samples() {
      assertEquals(List.of(), failures, "sampling failed");
      assertNotEquals(List.of(), samples, "no sample taken");
      return List.copyOf(samples);
    }

    @Override
    public void close() throws InterruptedException {
      stop = true;
      thread.join(REQUEST_TIMEOUT.toMillis());
    }
  }

  // ------------------------------------------------------------------------------ waiting

  private static void await(String what, BooleanSupplier condition, Duration timeout) {
    if (!ServiceTests.holdsWithin(timeout, POLL, condition)) {
      fail("timed out after " + timeout.toMillis() + " ms waiting for " + what);
    }
  }
}
