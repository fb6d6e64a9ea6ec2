package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The HTTP edge of the packaged proxy (its embedded prefill and decode instances serving
 * aidreams260K, a context of {@value ProxyProcess#CONTEXT} tokens), over real sockets on
 * 127.0.0.1: the official {@code openai} and {@code @langchain/openai} npm clients served
 * unchanged, a fuzz of generated requests, and prompts of the body-size limit next to other
 * clients' requests.
 */
class HttpEdgeIT {

  private static final Duration TIMEOUT = Duration.ofSeconds(30);
  private static final String GOOD = new JsonObject().put("model", ProxyProcess.MODEL)
      .put("prompt", "Once upon a time").put("max_tokens", 4).put("temperature", 0).encode();
  private static final Set<String> ERROR_FIELDS = Set.of("message", "type", "param", "code");
  private static ProxyProcess proxy;

  @BeforeAll
  static void startProxy() throws Exception {
    Path work = Files.createTempDirectory(ProxyProcess.targetDir(), "http-edge-it-");
    proxy = ProxyProcess.start(work, 1 << 20);
  }

  @AfterAll
  static void stopProxy() throws Exception {
    if (proxy != null) {
      proxy.close();
    }
  }

  // ---- the official clients -------------------------------------------------------------------

  /**
   * {@code src/test/clients/clients.mjs} under Node: the {@code openai} client's completions
   * (one prompt, batched, token ids, streamed, errors) and chat completions, langchain's
   * {@code OpenAI.batch()} of 25 prompts (20 a request) and {@code generate()}, and
   * {@code ChatOpenAI.invoke()}; the packages as {@code package-lock.json} pins them, installed
   * with {@code npm ci}.
   */
  @Test
  void theOfficialClientsAreServedUnchanged() throws Exception {
    Path sources = ProxyProcess.repoDir().resolve("proxy-service/src/test/clients");
    Path clients = ProxyProcess.targetDir().resolve("clients-node");
    Files.createDirectories(clients);
    for (String file : List.of("package.json", "package-lock.json", "clients.mjs")) {
      Files.copy(sources.resolve(file), clients.resolve(file),
          StandardCopyOption.REPLACE_EXISTING);
    }
    run(clients, Duration.ofSeconds(180), "npm", "ci", "--no-audit", "--no-fund");
    String output = run(clients, Duration.ofSeconds(60), "node", "clients.mjs");
    assertEquals(9, output.lines().filter(line -> line.startsWith("ok ")).count(), output);
  }

  /** Runs a command in {@code dir}; its output, or a failure with it. */
  private static String run(Path dir, Duration timeout, String... command) throws Exception {
    Path output = Files.createTempFile(dir, "run-", ".log");
    ProcessBuilder builder = new ProcessBuilder(command).directory(dir.toFile())
        .redirectErrorStream(true).redirectOutput(output.toFile());
    builder.environment().put("DUET_BASE_URL", proxy.baseUrl());
    builder.environment().put("DUET_MODEL", ProxyProcess.MODEL);
    Process process = builder.start();
    boolean ended = process.waitFor(timeout.toSeconds(), TimeUnit.SECONDS);
    if (!ended) {
      process.descendants().forEach(ProcessHandle::destroyForcibly);
      process.destroyForcibly();
    }
    String text = Files.readString(output);
    assertTrue(ended && process.exitValue() == 0, String.join(" ", command) + " failed ("
        + (ended ? "exit " + process.exitValue() : "timed out") + "):\n" + text);
    return text;
  }

  // ---- fuzz -----------------------------------------------------------------------------------

  /**
   * 2 000 generated requests from four clients at once. None may get a 5xx or hang; every 4xx
   * carries the OpenAI error object; after each request that did not succeed a good request
   * must; {@code /health} stays 200 and the process alive throughout.
   */
  @Test
  void noGeneratedRequestGetsA5xxAndAGoodRequestAfterEachFailureSucceeds() throws Exception {
    long seed = System.nanoTime();
    int clients = 4;
    int perClient = 500;
    ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
    AtomicInteger failures = new AtomicInteger();
    AtomicInteger good = new AtomicInteger();
    ExecutorService pool = Executors.newFixedThreadPool(clients);
    long start = System.nanoTime();
    try {
      List<Future<?>> runs = new ArrayList<>();
      for (int c = 0; c < clients; c++) {
        RequestFuzzer fuzzer = new RequestFuzzer(new Random(seed + c), ProxyProcess.MODEL);
        runs.add(pool.submit(() -> {
          for (int i = 0; i < perClient && problems.size() < 20; i++) {
            RequestFuzzer.Fuzzed request = fuzzer.next();
            Outcome outcome = send(request);
            if (outcome.problem() != null) {
              problems.add(outcome.problem());
            }
            if (!outcome.succeeded()) {
              failures.incrementAndGet();
              String after = goodRequestSucceeds();
              good.incrementAndGet();
              if (after != null) {
                problems.add("after " + request.description() + ": " + after);
              }
            }
            if (i % 100 == 0 && !healthy()) {
              problems.add("/health is not 200 after " + request.description());
            }
          }
          return null;
        }));
      }
      for (Future<?> run : runs) {
        run.get(120, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }
    long seconds = (System.nanoTime() - start) / 1_000_000_000;
    System.out.printf(Locale.ROOT, "[HttpEdgeIT] fuzz seed %d: %d requests, %d not successful, "
        + "%d good requests after them, %d s%n", seed, clients * perClient, failures.get(),
        good.get(), seconds);
    assertTrue(problems.isEmpty(), "seed " + seed + ":\n" + String.join("\n", problems)
        + "\nproxy log:\n" + proxy.logTail());
    assertTrue(proxy.isAlive());
    assertTrue(healthy());
    assertTrue(failures.get() > clients * perClient / 2, "the fuzz must mostly fail: "
        + failures.get());
  }

  /** How a generated request went: what is wrong with its answer (null: nothing), and if 2xx. */
  private record Outcome(String problem, boolean succeeded) {
  }

  private static Outcome send(RequestFuzzer.Fuzzed request) {
    RawHttp.Response response;
    try {
      response = RawHttp.exchange(proxy.port(), request.bytes(), TIMEOUT, request.mayClose());
    } catch (IOException e) {
      return new Outcome(request.description() + ": " + e, false);
    }
    if (response == null) {
      return new Outcome(request.mayClose() ? null
          : request.description() + ": closed without an answer", false);
    }
    String what = request.description() + " -> " + response.status() + " " + response.body();
    if (response.status() >= 500 && !(request.mayClose() && response.status() == 501)) {
      return new Outcome(what, false);
    }
    if (response.status() == 501) {
      // Vert.x answers a request line of another HTTP version than 1.x (HTTP/9.9) with an
      // empty 501 before any handler sees it: not an API request, and not a failure.
      return new Outcome(null, false);
    }
    if (response.status() < 400) {
      return new Outcome(null, true);
    }
    try {
      JsonObject error = new JsonObject(response.body()).getJsonObject("error");
      boolean openAiShape = error.fieldNames().equals(ERROR_FIELDS)
          && !error.getString("message").isBlank() && !error.getString("type").isBlank();
      return new Outcome(openAiShape ? null : "not the OpenAI error object: " + what, false);
    } catch (RuntimeException e) {
      return new Outcome("not the OpenAI error object (" + e.getMessage() + "): " + what, false);
    }
  }

  private static String goodRequestSucceeds() {
    try {
      RawHttp.Response response = RawHttp.exchange(proxy.port(),
          RawHttp.postJson("/v1/completions", GOOD), TIMEOUT);
      if (response == null || response.status() != 200) {
        return "the good request got " + (response == null ? "no answer"
            : response.status() + " " + response.body());
      }
      return new JsonObject(response.body()).getJsonArray("choices").getJsonObject(0)
          .getString("text") != null ? null : "no text: " + response.body();
    } catch (IOException | RuntimeException e) {
      return "the good request failed: " + e;
    }
  }

  private static boolean healthy() {
    try {
      RawHttp.Response health = RawHttp.exchange(proxy.port(),
          RawHttp.request("GET", "/health", "", null), TIMEOUT);
      return health != null && health.status() == 200;
    } catch (IOException e) {
      return false;
    }
  }

  // ---- a prompt of the body-size limit --------------------------------------------------------

  /**
   * Prompts as long as the body limit allows (a mebibyte), and prompts just long enough to be
   * tokenized before they are refused, sent while four other clients run short completions:
   * each long one is refused as {@code context_length_exceeded}, the others' requests all
   * succeed and none takes more than a second longer than the slowest before, and no instance
   * leaves the registry.
   */
  @Test
  void promptsOfTheBodyLimitDoNotDelayOtherClients() throws Exception {
    List<Long> before = timedGoodRequests(20);
    long baseline = before.stream().mapToLong(Long::longValue).max().orElseThrow();
    String bigPrompt = "Once upon a time ".repeat(((1 << 20) - 200) / 17);
    String tokenizedPrompt = "Once upon a time ".repeat(70);
    AtomicBoolean longOnesRunning = new AtomicBoolean(true);
    ConcurrentLinkedQueue<Long> during = new ConcurrentLinkedQueue<>();
    ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
    ExecutorService pool = Executors.newFixedThreadPool(4 + 2);
    try {
      List<Future<?>> others = new ArrayList<>();
      for (int c = 0; c < 4; c++) {
        others.add(pool.submit(() -> {
          while (longOnesRunning.get()) {
            long start = System.nanoTime();
            String problem = goodRequestSucceeds();
            during.add((System.nanoTime() - start) / 1_000_000);
            if (problem != null) {
              problems.add(problem);
            }
          }
          return null;
        }));
      }
      List<Future<String>> longOnes = new ArrayList<>();
      for (int i = 0; i < 6; i++) {
        String prompt = i % 2 == 0 ? bigPrompt : tokenizedPrompt;
        longOnes.add(pool.submit(() -> refusedAsTooLong(prompt)));
      }
      for (Future<String> longOne : longOnes) {
        String problem = longOne.get(60, TimeUnit.SECONDS);
        if (problem != null) {
          problems.add(problem);
        }
      }
      longOnesRunning.set(false);
      for (Future<?> other : others) {
        other.get(60, TimeUnit.SECONDS);
      }
    } finally {
      longOnesRunning.set(false);
      pool.shutdownNow();
    }
    long slowest = during.stream().mapToLong(Long::longValue).max().orElseThrow();
    System.out.printf(Locale.ROOT, "[HttpEdgeIT] other clients: slowest %d ms before, %d ms "
        + "during %d requests next to the long prompts%n", baseline, slowest, during.size());
    assertTrue(problems.isEmpty(), String.join("\n", problems));
    assertTrue(slowest <= baseline + 1000, "slowest request " + slowest + " ms, before "
        + baseline + " ms");
    assertFalse(proxy.log().contains("removed: no heartbeat"), "an instance left the registry");
    assertTrue(healthy());
  }

  private static List<Long> timedGoodRequests(int count) {
    List<Long> millis = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      long start = System.nanoTime();
      String problem = goodRequestSucceeds();
      assertEquals(null, problem);
      millis.add((System.nanoTime() - start) / 1_000_000);
    }
    return millis;
  }

  /** Null when {@code prompt} is refused with 400 {@code context_length_exceeded}. */
  private static String refusedAsTooLong(String prompt) throws IOException {
    String body = new JsonObject().put("model", ProxyProcess.MODEL).put("prompt", prompt)
        .encode();
    RawHttp.Response response = RawHttp.exchange(proxy.port(),
        RawHttp.postJson("/v1/completions", body), TIMEOUT);
    assertNotNull(response, "no answer to a prompt of " + prompt.length() + " characters");
    String code = response.status() == 400 ? new JsonObject(response.body())
        .getJsonObject("error").getString("code") : null;
    return "context_length_exceeded".equals(code) ? null : "a prompt of "
        + body.getBytes(StandardCharsets.UTF_8).length + " bytes got " + response.status() + " "
        + response.body();
  }
}
