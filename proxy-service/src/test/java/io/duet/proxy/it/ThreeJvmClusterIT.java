package io.duet.proxy.it;

import static io.duet.service.StatusPages.DECODE_RUNNING;
import static io.duet.service.StatusPages.DECODE_TOKENS;
import static io.duet.service.StatusPages.KV_BLOCKS_USED;
import static io.duet.service.StatusPages.KV_LEASES;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.FinishReason;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.proxy.ChatMessage;
import io.duet.proxy.ChatTemplate;
import io.duet.service.ServiceRuntime;
import io.duet.service.ServiceTests;
import io.duet.service.StatusPages;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * The reference 1P1D as it is deployed: three JVMs started from the packaged jars (prefill,
 * decode, proxy) forming one Hazelcast cluster over loopback, the decode instance with two
 * data-parallel ranks, driven over real HTTP and by the
 * example event-bus client, run from its own jar in a JVM of its own that joins the cluster.
 * Every generated text is checked against the engine run alone in this JVM, and the KV block
 * gauges of both services must return to zero after normal, concurrent and aborted requests.
 *
 * <p>Requests that are to be stopped while they run go to a second prefill/decode pair in the
 * same cluster, serving a model the test writes: random weights with aidreams260K's vocabulary
 * (so its tokenizer serves it) and a context of {@value #LONG_SEQ_LEN} tokens, whose generation
 * to the end takes seconds where aidreams260K's takes a tenth of one. So a client that leaves or
 * cancels after its first event always does so mid-generation, and its own pair's counters show
 * what the decode instance did with that request alone.
 *
 * <p>The cluster is started once for the class; the tests do not depend on each other or on
 * their order: each starts by waiting for an idle cluster (no KV held, no request in flight),
 * and compares the counters it reads with their values at its start.
 *
 * <p>Each run uses its own cluster name and its own free port range, so a stale JVM of an
 * earlier run cannot join; every child is killed with its descendants in {@link #stopCluster()}
 * and, should this JVM be interrupted, by a shutdown hook.
 */
class ThreeJvmClusterIT {

  private static final String MODEL = "deepseek";
  /** The served name of the long-context model (see the class comment). */
  private static final String LONG_MODEL = "longctx";
  private static final int LONG_SEQ_LEN = LongContextModel.SEQ_LEN;
  /**
   * The max_tokens of a request meant to run for seconds: nearly the whole context, leaving the
   * prompt room (a max_tokens past the context is refused, as OpenAI and vLLM refuse it).
   */
  private static final int LONG_MAX_TOKENS = LONG_SEQ_LEN - 64;
  /** Five service JVMs starting on two cores take 20 s, 45 s on a machine busy with builds. */
  private static final Duration READY_TIMEOUT = Duration.ofSeconds(150);
  private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(60);
  /**
   * How long freed KV blocks may take to show in the gauges. Well below the prefill lease
   * (30 s in the topology), so an expiring lease cannot hide a leak.
   */
  private static final Duration RELEASE_TIMEOUT = Duration.ofSeconds(10);
  private static final int LEASE_SECONDS = 30;
  private static final int HAZELCAST_PORT_COUNT = 20;
  /** How often a condition of another JVM (its metrics, its model list) is looked at. */
  private static final Duration POLL = Duration.ofMillis(100);
  /** The decode instance's data-parallel ranks; rank r's status port is decodeHttpPort + r. */
  private static final int DECODE_RANKS = 2;
  /** The example client's last line when the proxy answered its cancel while the request ran. */
  private static final Pattern CANCELLED = Pattern.compile(
      "\\[failure=CANCELLED .* completion_tokens=(\\d+)\\]");

  /** What a completion answered, streamed or whole. */
  private record Answer(String text, String finishReason, JsonObject usage) {
  }

  /**
   * A run of the example event-bus client: its exit status and its standard output, the text as
   * it streamed in followed by a summary line.
   */
  private record ClientRun(int exit, String stdout, Path log) {

    String text() {
      String out = stdout.endsWith("\n") ? stdout.substring(0, stdout.length() - 1) : stdout;
      return out.substring(0, Math.max(0, out.lastIndexOf('\n')));
    }

    String summary() {
      return stdout.strip().substring(stdout.strip().lastIndexOf('\n') + 1);
    }

    String describe() {
      return "exit " + exit + ", stdout:\n" + stdout + "\nlog: " + log;
    }
  }

  private static ChildJvms jvms;
  private static String cluster;
  private static int hazelcastPort;
  private static int proxyPort;
  private static int prefillHttpPort;
  private static int decodeHttpPort;
  private static int longPrefillHttpPort;
  private static int longDecodeHttpPort;
  private static HttpClient http;
  private static StatusPages pages;
  private static Engine reference;
  private static Engine longReference;

  @RegisterExtension
  static final TestWatcher DUMP_LOGS_ON_FAILURE = ChildJvms.dumpingLogsOnFailure(() -> jvms);

  // ------------------------------------------------------------------------------ lifecycle

  @BeforeAll
  static void startCluster() throws Exception {
    Path repo = ItPaths.repoDir();
    Path model = ItPaths.sharedModel(repo, "aidreams260K.bin");
    Path tokenizer = ItPaths.sharedModel(repo, "aidreams260K.tok512.bin");

    Path target = ItPaths.targetDir();
    jvms = new ChildJvms("ThreeJvmClusterIT", target.resolve("it-logs"));
    Path work = Files.createTempDirectory(target, "three-jvm-it-");

    cluster = "duet-it-" + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 16);
    Set<Integer> taken = new HashSet<>();
    hazelcastPort = ItPaths.freePortRange(HAZELCAST_PORT_COUNT + 1, taken);
    proxyPort = ItPaths.freePortRange(1, taken);
    prefillHttpPort = ItPaths.freePortRange(1, taken);
    decodeHttpPort = ItPaths.freePortRange(DECODE_RANKS, taken);
    longPrefillHttpPort = ItPaths.freePortRange(1, taken);
    longDecodeHttpPort = ItPaths.freePortRange(1, taken);
    Path topology = work.resolve("1p1d-it.yaml");
    Files.writeString(topology, topology(prefillHttpPort, decodeHttpPort));
    Path longTopology = work.resolve("1p1d-long-it.yaml");
    Files.writeString(longTopology, topology(longPrefillHttpPort, longDecodeHttpPort));
    Path longModel = LongContextModel.write(work.resolve("longctx.bin"));

    reference = Engine.open(new EngineOptions().modelPath(model).tokenizerPath(tokenizer)
        .kvBlocks(512).threads(1));
    longReference = Engine.open(new EngineOptions().modelPath(longModel)
        .tokenizerPath(tokenizer).kvBlocks(64).threads(1));
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    pages = new StatusPages(http);

    List<String> args = List.of("--config", topology.toString(), "--model", model.toString(),
        "--tokenizer", tokenizer.toString(), "--served-model-name", MODEL);
    List<String> longArgs = List.of("--config", longTopology.toString(), "--model",
        longModel.toString(), "--tokenizer", tokenizer.toString(), "--served-model-name",
        LONG_MODEL);
    long start = System.nanoTime();
    try {
      jvms.startService("prefill", ItPaths.jar(repo, "prefill-service"), args);
      jvms.startService("decode", ItPaths.jar(repo, "decode-service"), args);
      jvms.startService("proxy", ItPaths.jar(repo, "proxy-service"), args);
      jvms.startService("prefill-long", ItPaths.jar(repo, "prefill-service"), longArgs);
      jvms.startService("decode-long", ItPaths.jar(repo, "decode-service"), longArgs);
      awaitModelsServed(MODEL, LONG_MODEL);
    } catch (Throwable e) {
      jvms.dumpLogs("the cluster did not start: " + e);
      throw e;
    }
    System.out.printf(Locale.ROOT, "[ThreeJvmClusterIT] cluster %s (hazelcast %d+, proxy %d) "
        + "ready in %d ms; logs in %s%n", cluster, hazelcastPort, proxyPort,
        (System.nanoTime() - start) / 1_000_000, jvms.logDir());
  }

  @AfterAll
  static void stopCluster() throws Exception {
    try {
      if (jvms != null) {
        jvms.close();
      }
    } finally {
      if (reference != null) {
        reference.close();
      }
      if (longReference != null) {
        longReference.close();
      }
    }
  }

  /**
   * The topology of this run's cluster, with the status ports of one prefill/decode pair (a JVM
   * that is not a proxy ignores the proxy's part).
   */
  private static String topology(int prefillHttpPort, int decodeHttpPort) {
    return """
        # Written by ThreeJvmClusterIT: cluster-config/topologies/1p1d.yaml with a cluster
        # name and ports of its own, fast failure detection, small engines and a proxy with two
        # HTTP servers (event loops) whatever the cores of the machine.
        cluster:
          name: %s
          host: 127.0.0.1
          port: %d
          port-count: %d
          members: [127.0.0.1]
          heartbeat-millis: 500
          heartbeat-timeout-millis: 3000
          hazelcast-properties:
            hazelcast.wait.seconds.before.join: "0"
        model:
          served-name: %s
        proxy:
          port: %d
          http-instances: 2
          embedded: false
        prefill:
          http-port: %d
          max-batch-tokens: 2048
          lease-seconds: %d
          kv-cache-mb: 32
          threads: 1
        decode:
          http-port: %d
          dp: %d
          max-num-seqs: 32
          kv-cache-mb: 32
          threads: 1
        """.formatted(cluster, hazelcastPort, HAZELCAST_PORT_COUNT, MODEL, proxyPort,
        prefillHttpPort, LEASE_SECONDS, decodeHttpPort, DECODE_RANKS);
  }

  /**
   * Polls {@code GET /v1/models} until it lists every one of {@code models}: their prefill and
   * decode instances registered with the proxy. Fails at once when a child exits.
   */
  private static void awaitModelsServed(String... models) {
    String[] last = {"no answer yet"};
    boolean served = ServiceTests.holdsWithin(READY_TIMEOUT, POLL, () -> {
      jvms.assertAllAlive("during start-up");
      Optional<Set<String>> listed = pages.servedModels(proxyPort);
      last[0] = listed.map(Object::toString).orElse("none");
      return listed.map(set -> set.containsAll(List.of(models))).orElse(false);
    });
    if (!served) {
      fail("the proxy did not serve " + List.of(models) + " within " + READY_TIMEOUT.toSeconds()
          + " s; last models listed: " + last[0]);
    }
  }

  /**
   * Whatever ran before, a test starts on an idle cluster: no KV held by any instance, no
   * request in flight in the proxy.
   */
  @BeforeEach
  void clusterIsIdle() throws Exception {
    awaitNoKvBlocksUsed();
    awaitNoKvHeld(longPrefillHttpPort, longDecodeHttpPort, 1, "the long-context instances");
    awaitTrue("the proxy to have no request in flight",
        () -> proxyMetric("duet_requests_in_flight", "") == 0);
  }

  // ------------------------------------------------------------------------------ tests

  @Test
  void theIssuesRequestStreamsTheAnswerWithUsageInEveryChunk() throws Exception {
    String prompt = "how are you?";
    OfflineGenerator.Completion expected = engineCompletion(prompt, 50);
    // Greedy aidreams260K does not stop by itself on this prompt: all 50 tokens come.
    assertEquals(FinishReason.LENGTH, expected.finishReason());
    assertEquals(50, completionTokens(expected));

    HttpResponse<String> response = post("/v1/completions", new JsonObject("""
        {"model": "deepseek","temperature":0,"max_tokens":50,"prompt": "how are you?",
         "stream":true,"stream_options": {"include_usage": true,"continuous_usage_stats": true}}
        """));
    assertEquals(200, response.statusCode(), response::body);
    assertTrue(response.headers().firstValue("content-type").orElse("")
        .startsWith("text/event-stream"), () -> response.headers().toString());

    List<String> events = sseData(response.body());
    assertTrue(events.size() >= 3, () -> "too few events: " + response.body());
    assertEquals("[DONE]", events.get(events.size() - 1), "the stream ends with [DONE]");
    List<JsonObject> chunks = new ArrayList<>();
    for (String event : events.subList(0, events.size() - 1)) {
      assertFalse(event.equals("[DONE]"), "[DONE] before the end");
      chunks.add(new JsonObject(event));
    }
    String id = chunks.get(0).getString("id");
    assertNotNull(id);
    assertFalse(id.isBlank());
    StringBuilder text = new StringBuilder();
    String finishReason = null;
    int lastCompletionTokens = 0;
    for (int i = 0; i < chunks.size(); i++) {
      JsonObject chunk = chunks.get(i);
      String where = "chunk " + i + ": " + chunk.encode();
      assertEquals(id, chunk.getString("id"), where);
      assertEquals("text_completion", chunk.getString("object"), where);
      assertEquals(MODEL, chunk.getString("model"), where);
      JsonObject usage = chunk.getJsonObject("usage");
      assertNotNull(usage, where);
      assertEquals(expected.promptTokens().length, usage.getInteger("prompt_tokens"), where);
      int completionTokens = usage.getInteger("completion_tokens");
      assertEquals(usage.getInteger("prompt_tokens") + completionTokens,
          usage.getInteger("total_tokens"), where);
      JsonArray choices = chunk.getJsonArray("choices");
      if (i == chunks.size() - 1) {
        assertTrue(choices.isEmpty(), "the last chunk carries only the usage: " + where);
        assertEquals(50, completionTokens, where);
        assertTrue(completionTokens >= lastCompletionTokens, where);
      } else {
        assertEquals(1, choices.size(), where);
        assertTrue(completionTokens > lastCompletionTokens,
            "completion_tokens grows with every chunk: " + where);
        assertTrue(finishReason == null, "a chunk after the finish reason: " + where);
        text.append(choices.getJsonObject(0).getString("text"));
        finishReason = choices.getJsonObject(0).getString("finish_reason");
      }
      lastCompletionTokens = completionTokens;
    }
    assertEquals("length", finishReason);
    assertEquals(expected.text(), text.toString());
    // The packaged proxy found its default policies by name and counts their decisions.
    assertTrue(proxyMetric("duet_routing_decisions_total",
        "kind=\"prefill\",policy=\"least-prompt-tokens\"") >= 1);
    assertTrue(proxyMetric("duet_routing_decisions_total",
        "kind=\"decode\",policy=\"least-load\"") >= 1);
  }

  @Test
  void textThroughPrefillAndDecodeEqualsTheEngineAlone() throws Exception {
    String prompt = "Once upon a time";
    OfflineGenerator.Completion completion = engineCompletion(prompt, 60);
    JsonObject completionRequest = new JsonObject().put("model", MODEL).put("prompt", prompt)
        .put("temperature", 0).put("max_tokens", 60);
    assertAnswer(completion, completeWhole(completionRequest), "completion");
    assertAnswer(completion, completeStreamed(completionRequest, false), "streamed completion");

    String question = "Tell me about your dreams.";
    OfflineGenerator.Completion chat = engineChat(question, 60);
    JsonObject chatRequest = chatRequest(question, 60);
    assertAnswer(chat, completeWhole(chatRequest), "chat completion");
    assertAnswer(chat, completeStreamed(chatRequest, true), "streamed chat completion");
  }

  @Test
  void sixteenConcurrentRequestsAllCompleteAndFreeEveryBlock() throws Exception {
    List<String> subjects = List.of("The robot", "Hello world", "In the quiet lab, a",
        "Once upon a time", "Pixels", "A dream of", "Whispers", "The network", "Silicon",
        "Electric sheep", "Memory", "The algorithm", "Stars and", "Quantum", "I wonder",
        "Data flows");
    int maxTokens = 40;
    List<OfflineGenerator.Completion> expected = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      expected.add(i % 4 >= 2 ? engineChat(subjects.get(i), maxTokens)
          : engineCompletion(subjects.get(i), maxTokens));
    }
    List<CompletableFuture<Answer>> answers = new ArrayList<>();
    // one thread per request: all 16 are in flight at once
    ExecutorService clients = Executors.newFixedThreadPool(16);
    try {
      for (int i = 0; i < 16; i++) {
        String subject = subjects.get(i);
        boolean chat = i % 4 >= 2;
        boolean stream = i % 2 == 1;
        JsonObject request = chat ? chatRequest(subject, maxTokens)
            : new JsonObject().put("model", MODEL).put("prompt", subject).put("temperature", 0)
                .put("max_tokens", maxTokens);
        answers.add(CompletableFuture.supplyAsync(unchecked(() -> stream
            ? completeStreamed(request, chat) : completeWhole(request)), clients));
      }
      CompletableFuture.allOf(answers.toArray(CompletableFuture[]::new))
          .get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    } finally {
      clients.shutdownNow();
    }
    for (int i = 0; i < 16; i++) {
      assertAnswer(expected.get(i), answers.get(i).get(), "request " + i + " ('"
          + subjects.get(i) + "', " + (i % 4 >= 2 ? "chat" : "completion")
          + (i % 2 == 1 ? ", streamed" : "") + ")");
    }
    awaitNoKvBlocksUsed();
  }

  @Test
  void aClientThatDisconnectsMidStreamLeaksNoBlocks() throws Exception {
    // A stream of the long-context model: the client surely leaves while it runs.
    String prompt = "Once upon a time";
    int fullLength = fullLength(prompt, LONG_MAX_TOKENS);
    double abortedBefore = proxyRequests("/v1/completions", 499);
    double tokensBefore = metric(longDecodeHttpPort, DECODE_TOKENS);

    assertFalse(readTwoEventsAndDisconnect(LONG_MODEL, prompt, LONG_MAX_TOKENS),
        "the stream ended before the client left");
    awaitTrue("the proxy to count the request as abandoned by its client (499)",
        () -> proxyRequests("/v1/completions", 499) == abortedBefore + 1);
    awaitStoppedMidGeneration(tokensBefore, fullLength);
    awaitTrue("the proxy to have no request in flight",
        () -> proxyMetric("duet_requests_in_flight", "") == 0);

    // and the cluster goes on serving, on the instances the stream ran on and on the others
    assertAnswer(engineCompletion(longReference, "Pixels", 20), completeWhole(new JsonObject()
        .put("model", LONG_MODEL).put("prompt", "Pixels").put("temperature", 0)
        .put("max_tokens", 20)), "a request to the long-context model after the disconnect");
    OfflineGenerator.Completion expected = engineCompletion("Pixels", 20);
    assertAnswer(expected, completeWhole(new JsonObject().put("model", MODEL)
        .put("prompt", "Pixels").put("temperature", 0).put("max_tokens", 20)),
        "a request after the disconnect");
  }

  /**
   * Starts a stream of {@code maxTokens} tokens ignoring the end of sequence on a raw socket (so
   * that leaving is a real TCP close), reads its first two events and closes the connection.
   * Returns whether the stream had already ended.
   */
  private static boolean readTwoEventsAndDisconnect(String model, String prompt, int maxTokens)
      throws IOException {
    try (SseStream stream = SseStream.open(proxyPort, new JsonObject().put("model", model)
        .put("prompt", prompt).put("temperature", 0).put("max_tokens", maxTokens)
        .put("ignore_eos", true))) {
      await("two events of the stream or its end",
          () -> stream.events().size() >= 2 || stream.ended().isDone(), REQUEST_TIMEOUT);
      assertEquals(200, stream.status(), stream::describe);
      List<SseStream.Event> events = stream.events();
      for (SseStream.Event event : events.subList(0, Math.min(2, events.size()))) {
        if (event.isDone()) {
          return true;
        }
        assertFalse(event.isError(), event.data());
      }
      assertTrue(events.size() >= 2, () -> "the stream ended without [DONE]: "
          + stream.describe());
      return false;
    }
  }

  @Test
  void badInputIsA400WithAnOpenAiErrorAndTheNextRequestSucceeds() throws Exception {
    HttpResponse<String> bad = post("/v1/completions",
        new JsonObject("{\"model\":\"deepseek\",\"prompt\":\"hi\",\"temperature\":\"hot\"}"));
    assertEquals(400, bad.statusCode(), bad::body);
    assertTrue(bad.headers().firstValue("content-type").orElse("").startsWith("application/json"),
        () -> bad.headers().toString());
    JsonObject error = new JsonObject(bad.body()).getJsonObject("error");
    assertNotNull(error, bad.body());
    assertTrue(error.getString("message") != null && error.getString("message")
        .contains("temperature"), bad.body());
    assertEquals("invalid_request_error", error.getString("type"), bad.body());

    OfflineGenerator.Completion expected = engineCompletion("hi", 16);
    assertAnswer(expected, completeWhole(new JsonObject().put("model", MODEL).put("prompt", "hi")
        .put("temperature", 0).put("max_tokens", 16)), "the request after a bad one");
    awaitNoKvBlocksUsed();
  }

  // ------------------------------------------------------------------------------ event-bus clients

  @Test
  void theEventBusClientGetsTheSameGreedyTextAsTheHttpApi() throws Exception {
    String prompt = "how are you?";
    OfflineGenerator.Completion expected = engineCompletion(prompt, 50);
    Answer http = completeWhole(new JsonObject().put("model", MODEL).put("prompt", prompt)
        .put("temperature", 0).put("max_tokens", 50));
    assertAnswer(expected, http, "over HTTP");

    double answeredBefore = proxyRequests("eventbus", 200);
    ClientRun run = runEventBusClient(MODEL, "--max-tokens", "50", prompt);
    assertEquals(0, run.exit(), run::describe);
    assertEquals(http.text(), run.text(), run::describe);
    assertEquals("[finish_reason=" + http.finishReason() + " prompt_tokens="
        + http.usage().getInteger("prompt_tokens") + " completion_tokens="
        + http.usage().getInteger("completion_tokens") + "]", run.summary(), run::describe);

    String question = "Tell me about your dreams.";
    Answer httpChat = completeWhole(chatRequest(question, 40));
    assertAnswer(engineChat(question, 40), httpChat, "chat over HTTP");
    ClientRun chat = runEventBusClient(MODEL, "--chat", "--max-tokens", "40", question);
    assertEquals(0, chat.exit(), chat::describe);
    assertEquals(httpChat.text(), chat.text(), chat::describe);

    awaitTrue("the proxy to count both event-bus requests",
        () -> proxyRequests("eventbus", 200) == answeredBefore + 2);
    awaitNoKvBlocksUsed();
  }

  /**
   * The example client cancels after its first event a request of the long-context model that
   * would otherwise generate to the end of its context for seconds: the decode instance stops
   * it, and the KV of both instances is freed while the generation would still be running.
   */
  @Test
  void aCancelFromTheEventBusClientStopsTheDecodeAndFreesTheKvOnBothInstances() throws Exception {
    String prompt = "Once upon a time";
    int fullLength = fullLength(prompt, LONG_MAX_TOKENS);
    double abortedBefore = proxyRequests("eventbus", 499);
    double tokensBefore = metric(longDecodeHttpPort, DECODE_TOKENS);

    // After 2 events: the first comes from the prefill result, before any decode instance has
    // the request; the second shows the decode instance generating.
    ClientRun run = runEventBusClient(LONG_MODEL, "--ignore-eos", "--max-tokens",
        String.valueOf(LONG_MAX_TOKENS), "--credits", "4", "--cancel-after", "2", prompt);
    assertEquals(0, run.exit(), run::describe);
    // The proxy answers a cancel with the stream's last event: CANCELLED, as the request still
    // ran, with the tokens it had streamed.
    Matcher summary = CANCELLED.matcher(run.summary());
    assertTrue(summary.matches(), run::describe);
    double generated = awaitStoppedMidGeneration(tokensBefore, fullLength);
    assertTrue(Integer.parseInt(summary.group(1)) <= generated, run::describe);
    awaitTrue("the proxy to count the cancelled request (499)",
        () -> proxyRequests("eventbus", 499) == abortedBefore + 1);
    awaitTrue("the proxy to have no request in flight",
        () -> proxyMetric("duet_requests_in_flight", "") == 0);
  }

  // ------------------------------------------------------------------------------ decode ranks

  @Test
  void bothRanksOfTheDecodeInstanceAnnounceThemselvesAndDecode() throws Exception {
    Set<String> instances = new HashSet<>();
    double[] tokensBefore = new double[DECODE_RANKS];
    for (int rank = 0; rank < DECODE_RANKS; rank++) {
      int port = decodeHttpPort + rank;
      // What the rank's /health reports is the registry entry it heartbeats.
      JsonObject entry = new JsonObject(pages.get(port, "/health")).getJsonObject("instance");
      assertEquals(rank, entry.getInteger("dpRank"), entry::encode);
      assertEquals(DECODE_RANKS, entry.getInteger("ranks"), entry::encode);
      assertEquals(port, entry.getInteger("httpPort"), entry::encode);
      instances.add(entry.getString("instanceId"));
      tokensBefore[rank] = metric(port, DECODE_TOKENS);
    }
    assertEquals(1, instances.size(), "the ranks of one instance: " + instances);

    List<String> prompts = List.of("The robot", "Hello world", "Pixels", "A dream of",
        "Whispers", "The network", "Silicon", "Memory");
    List<CompletableFuture<Answer>> answers = new ArrayList<>();
    ExecutorService clients = Executors.newFixedThreadPool(prompts.size());
    try {
      for (String prompt : prompts) {
        answers.add(CompletableFuture.supplyAsync(unchecked(() -> completeWhole(new JsonObject()
            .put("model", MODEL).put("prompt", prompt).put("temperature", 0)
            .put("max_tokens", 40))), clients));
      }
      CompletableFuture.allOf(answers.toArray(CompletableFuture[]::new))
          .get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    } finally {
      clients.shutdownNow();
    }
    for (int i = 0; i < prompts.size(); i++) {
      assertAnswer(engineCompletion(prompts.get(i), 40), answers.get(i).get(),
          "'" + prompts.get(i) + "'");
    }
    for (int rank = 0; rank < DECODE_RANKS; rank++) {
      assertTrue(metric(decodeHttpPort + rank, DECODE_TOKENS) > tokensBefore[rank],
          "the proxy sent rank " + rank + " some of the concurrent requests");
    }
    awaitNoKvBlocksUsed();
  }

  /**
   * Awaits the long-context pair going idle after the one request it ran was stopped by its
   * client: no request running on the decode instance, no KV block used by either instance, no
   * lease on the prefill instance. Then the decode instance must have generated fewer tokens
   * than the request would have had: its counter only grows, so it showed fewer still when the
   * KV was seen freed, and nothing runs any more: the generation was stopped, and its KV freed
   * while it would otherwise still have been running.
   *
   * @param tokensBefore {@code duet_decode_tokens_total} of the pair's decode instance before
   *     the request
   * @param fullLength the tokens the request would have generated to its end
   * @return the tokens the decode instance generated for the request
   */
  private static double awaitStoppedMidGeneration(double tokensBefore, int fullLength)
      throws Exception {
    awaitTrue("the long-context decode instance to run no request",
        () -> metric(longDecodeHttpPort, DECODE_RUNNING) == 0);
    awaitNoKvHeld(longPrefillHttpPort, longDecodeHttpPort, 1, "the long-context instances");
    double generated = metric(longDecodeHttpPort, DECODE_TOKENS) - tokensBefore;
    System.out.printf(Locale.ROOT, "[ThreeJvmClusterIT] the long-context decode instance "
        + "stopped after %.0f of the request's %d tokens%n", generated, fullLength);
    assertTrue(generated >= 1 && generated < fullLength, "the decode instance generated "
        + generated + " tokens of the request's " + fullLength);
    return generated;
  }

  /**
   * The tokens a greedy request of {@code prompt} ignoring the end of sequence generates on the
   * long-context model: {@code maxTokens}, or as the decode service counts them, every token up
   * to the end of the context and the one sampled there.
   */
  private static int fullLength(String prompt, int maxTokens) {
    int promptTokens = longReference.tokenizer().encode(prompt, true).length;
    return Math.min(maxTokens, LONG_SEQ_LEN + 1 - promptTokens);
  }

  /**
   * Runs the example client from its jar, in a JVM of its own that joins this test's cluster,
   * and waits for it to exit. It stays on the children's list, so it is killed should this JVM
   * give up on it.
   */
  private static ClientRun runEventBusClient(String model, String... args) throws Exception {
    String name = "eventbus-client-" + jvms.children().size();
    Path stdout = jvms.logDir().resolve(name + ".out");
    Path log = jvms.logDir().resolve(name + ".log");
    List<String> command = new ArrayList<>(List.of("--cluster-name", cluster, "--port",
        String.valueOf(hazelcastPort), "--port-count", String.valueOf(HAZELCAST_PORT_COUNT),
        "--model", model));
    command.addAll(List.of(args));
    Process process = jvms.start(name, ChildJvms.command(ServiceRuntime.JVM_FLAGS,
        ItPaths.jar(ItPaths.repoDir().resolve("examples"), "eventbus-client"), command)
        .redirectOutput(stdout.toFile()).redirectError(log.toFile()), log).process();
    try {
      assertTrue(process.waitFor(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS),
          name + " did not exit within " + REQUEST_TIMEOUT.toSeconds() + " s; see " + log);
    } finally {
      process.destroyForcibly();
    }
    return new ClientRun(process.exitValue(), Files.readString(stdout, UTF_8), log);
  }

  // ------------------------------------------------------------------------------ expectations

  private static OfflineGenerator.Completion engineCompletion(String prompt, int maxTokens) {
    return engineCompletion(reference, prompt, maxTokens);
  }

  private static OfflineGenerator.Completion engineCompletion(Engine engine, String prompt,
      int maxTokens) {
    int[] tokens = engine.tokenizer().encode(prompt, true);
    return new OfflineGenerator(engine, 1).generate(tokens, SamplingParams.greedy(maxTokens));
  }

  private static OfflineGenerator.Completion engineChat(String userMessage, int maxTokens) {
    String prompt = ChatTemplate.forName(ChatTemplate.LLAMA2)
        .render(List.of(ChatMessage.user(userMessage)));
    return engineCompletion(prompt, maxTokens);
  }

  /** As the decode service counts: every sampled token, a final stop token included. */
  private static int completionTokens(OfflineGenerator.Completion completion) {
    return completion.outputTokens().length
        + (completion.finishReason() == FinishReason.STOP ? 1 : 0);
  }

  private static void assertAnswer(OfflineGenerator.Completion expected, Answer answer,
      String what) {
    assertEquals(expected.text(), answer.text(), what + ": text");
    assertEquals(expected.finishReason().wireName(), answer.finishReason(), what + ": finish_reason");
    if (answer.usage() != null) {
      assertEquals(expected.promptTokens().length, answer.usage().getInteger("prompt_tokens"),
          what + ": usage.prompt_tokens");
      assertEquals(completionTokens(expected), answer.usage().getInteger("completion_tokens"),
          what + ": usage.completion_tokens");
    }
  }

  // ------------------------------------------------------------------------------ requests

  private static JsonObject chatRequest(String userMessage, int maxTokens) {
    return new JsonObject().put("model", MODEL).put("temperature", 0).put("max_tokens", maxTokens)
        .put("messages", new JsonArray().add(new JsonObject().put("role", "user")
            .put("content", userMessage)));
  }

  private static boolean isChat(JsonObject request) {
    return request.containsKey("messages");
  }

  /** A non-streaming request: text, finish reason and usage of the one choice. */
  private static Answer completeWhole(JsonObject request) throws IOException, InterruptedException {
    boolean chat = isChat(request);
    HttpResponse<String> response = post(chat ? "/v1/chat/completions" : "/v1/completions",
        request.copy().put("stream", false));
    assertEquals(200, response.statusCode(), response::body);
    JsonObject body = new JsonObject(response.body());
    assertEquals(chat ? "chat.completion" : "text_completion", body.getString("object"),
        response::body);
    assertEquals(request.getString("model"), body.getString("model"), response::body);
    JsonArray choices = body.getJsonArray("choices");
    assertEquals(1, choices.size(), response::body);
    JsonObject choice = choices.getJsonObject(0);
    String text = chat ? choice.getJsonObject("message").getString("content")
        : choice.getString("text");
    if (chat) {
      assertEquals("assistant", choice.getJsonObject("message").getString("role"));
    }
    JsonObject usage = body.getJsonObject("usage");
    assertNotNull(usage, response::body);
    return new Answer(text, choice.getString("finish_reason"), usage);
  }

  /** A streaming request with usage: the deltas joined, the finish reason, the final usage. */
  private static Answer completeStreamed(JsonObject request, boolean chat)
      throws IOException, InterruptedException {
    HttpResponse<String> response = post(chat ? "/v1/chat/completions" : "/v1/completions",
        request.copy().put("stream", true)
            .put("stream_options", new JsonObject().put("include_usage", true)));
    assertEquals(200, response.statusCode(), response::body);
    assertTrue(response.headers().firstValue("content-type").orElse("")
        .startsWith("text/event-stream"), () -> response.headers().toString());
    List<String> events = sseData(response.body());
    assertFalse(events.isEmpty(), response::body);
    assertEquals("[DONE]", events.get(events.size() - 1), response::body);
    StringBuilder text = new StringBuilder();
    String finishReason = null;
    JsonObject usage = null;
    for (String event : events.subList(0, events.size() - 1)) {
      JsonObject chunk = new JsonObject(event);
      assertFalse(chunk.containsKey("error"), event);
      assertEquals(chat ? "chat.completion.chunk" : "text_completion", chunk.getString("object"),
          event);
      JsonArray choices = chunk.getJsonArray("choices");
      if (choices.isEmpty()) {
        assertTrue(usage == null, "a second usage chunk: " + event);
        usage = chunk.getJsonObject("usage");
        continue;
      }
      assertTrue(usage == null, "a choice after the usage chunk: " + event);
      JsonObject choice = choices.getJsonObject(0);
      String delta = chat ? choice.getJsonObject("delta").getString("content")
          : choice.getString("text");
      if (delta != null) {
        assertTrue(finishReason == null, "text after the finish reason: " + event);
        text.append(delta);
      }
      if (choice.getString("finish_reason") != null) {
        finishReason = choice.getString("finish_reason");
      }
    }
    assertNotNull(usage, "include_usage asks for a final usage chunk: " + response.body());
    return new Answer(text.toString(), finishReason, usage);
  }

  private static HttpResponse<String> post(String path, JsonObject body)
      throws IOException, InterruptedException {
    return http.send(HttpRequest.newBuilder(StatusPages.uri(proxyPort, path))
        .timeout(REQUEST_TIMEOUT)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body.encode())).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** The payloads of a server-sent event stream's {@code data:} lines, in order. */
  private static List<String> sseData(String body) {
    List<String> data = new ArrayList<>();
    for (String line : body.split("\n")) {
      if (line.startsWith("data: ")) {
        data.add(line.substring("data: ".length()).trim());
      } else {
        assertTrue(line.isBlank(), "unexpected line in the event stream: " + line);
      }
    }
    return data;
  }

  // ------------------------------------------------------------------------------ metrics

  private static void awaitNoKvBlocksUsed() throws Exception {
    awaitNoKvHeld(prefillHttpPort, decodeHttpPort, DECODE_RANKS, "");
  }

  /**
   * Awaits a prefill/decode pair holding no KV: no block used by the prefill instance or any of
   * the decode instance's {@code decodeRanks} ranks, no lease on prefill.
   */
  private static void awaitNoKvHeld(int prefillPort, int decodePort, int decodeRanks,
      String which) throws Exception {
    String of = which.isEmpty() ? "" : " (" + which + ")";
    for (int rank = 0; rank < decodeRanks; rank++) {
      int port = decodePort + rank;
      awaitTrue("decode rank " + rank + " to free every KV block" + of,
          () -> metric(port, KV_BLOCKS_USED) == 0);
    }
    awaitTrue("prefill to free every KV block" + of,
        () -> metric(prefillPort, KV_BLOCKS_USED) == 0);
    awaitTrue("prefill to hold no KV lease" + of, () -> metric(prefillPort, KV_LEASES) == 0);
  }

  private static double metric(int port, Pattern pattern) {
    return pages.metric(port, pattern);
  }

  private static double proxyMetric(String name, String labelMatch) {
    return metric(proxyPort, StatusPages.metricPattern(name, labelMatch));
  }

  /** {@code duet_requests_total} of the proxy for one endpoint and status (0 when none yet). */
  private static double proxyRequests(String endpoint, int status) {
    Pattern pattern = Pattern.compile("(?m)^duet_requests_total\\{([^}]*)\\}\\s+(\\S+)$");
    Matcher m = pattern.matcher(pages.get(proxyPort, "/metrics"));
    double total = 0;
    while (m.find()) {
      if (m.group(1).contains("endpoint=\"" + endpoint + "\"")
          && m.group(1).contains("status=\"" + status + "\"")) {
        total += Double.parseDouble(m.group(2));
      }
    }
    return total;
  }

  private static void awaitTrue(String what, Supplier<Boolean> condition) throws Exception {
    await(what, condition, RELEASE_TIMEOUT);
  }

  /** Polls {@code condition} every {@link #POLL} until it holds; fails after {@code timeout}. */
  private static void await(String what, Supplier<Boolean> condition, Duration timeout) {
    if (!ServiceTests.holdsWithin(timeout, POLL, condition::get)) {
      fail("timed out after " + timeout.toSeconds() + " s waiting for " + what
          + "\nprefill metrics:\n" + kvLines(prefillHttpPort)
          + "decode metrics:\n" + decodeKvLines()
          + "long-context prefill metrics:\n" + kvLines(longPrefillHttpPort)
          + "long-context decode metrics:\n" + kvLines(longDecodeHttpPort));
    }
  }

  private static String decodeKvLines() {
    StringBuilder out = new StringBuilder();
    for (int rank = 0; rank < DECODE_RANKS; rank++) {
      out.append(kvLines(decodeHttpPort + rank));
    }
    return out.toString();
  }

  private static String kvLines(int port) {
    StringBuilder out = new StringBuilder();
    for (String line : pages.get(port, "/metrics").split("\n")) {
      if (line.startsWith("duet_kv") || line.startsWith("duet_decode") || line.startsWith("duet_prefill")) {
        out.append("  ").append(line).append('\n');
      }
    }
    return out.toString();
  }

  // ------------------------------------------------------------------------------ plumbing

  private static <T> Supplier<T> unchecked(Callable<T> call) {
    return () -> {
      try {
        return call.call();
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    };
  }

  @FunctionalInterface
  private interface Callable<T> {
    T call() throws Exception;
  }
}
