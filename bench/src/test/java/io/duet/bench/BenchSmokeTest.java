package io.duet.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.bench.impl.Futures;
import io.duet.bench.impl.PdPipeline;
import io.duet.engine.EngineOptions;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.service.StatusServer;
import io.micrometer.core.instrument.Counter;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * Every subcommand, run through picocli as {@code bench.jar} would run it, with tiny settings on
 * the 260K model: it must exit 0, print its tables, and every figure in them (differences and
 * counts that may be zero aside) must be a positive number; the JSON must agree.
 */
class BenchSmokeTest {

  @TempDir
  Path temp;

  private static String shared(String file) {
    return Path.of(System.getProperty("duet.shared.dir", "../../shared"), "models", file)
        .toString();
  }

  /** Runs {@code bench.jar args}; returns stdout. */
  private static String run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cli = BenchMain.commandLine();
    cli.setOut(new PrintWriter(out));
    cli.setErr(new PrintWriter(err));
    int exit = cli.execute(args);
    assertEquals(0, exit, "exit code; stderr:\n" + err + "\nstdout:\n" + out);
    assertTrue(err.toString().contains("[bench] phase 1/"), "progress on stderr: " + err);
    return out.toString();
  }

  /** The columns of text besides the first. */
  private static final Set<String> TEXT_COLUMNS = Set.of("unit", "policy", "setting");
  /** Counts that are zero when all goes well. */
  private static final Set<String> MAY_BE_ZERO =
      Set.of("coalesced events", "failed", "waited for a slot", "all-to-all ms/step",
          "all-to-all %");
  /** Rows whose latencies are zero when one event carried both tokens they time. */
  private static final Set<String> MAY_BE_ZERO_ROWS = Set.of("2nd token");

  /**
   * The numeric cells of every table (a header line, a rule of dashes, rows up to a blank
   * line; cells separated by two or more spaces), skipping columns named {@code delta ...} and
   * the counts in {@link #MAY_BE_ZERO}, which may legitimately be zero or negative.
   */
  private static List<Double> figures(String output) {
    List<Double> figures = new ArrayList<>();
    String[] lines = output.split("\\R");
    for (int i = 1; i < lines.length; i++) {
      if (!lines[i].startsWith("---")) {
        continue;
      }
      String[] header = lines[i - 1].trim().split(" {2,}");
      for (int r = i + 1; r < lines.length && !lines[r].isBlank(); r++) {
        String[] cells = lines[r].trim().split(" {2,}");
        assertEquals(header.length, cells.length, "cells of row: " + lines[r]);
        for (int c = 0; c < cells.length; c++) {
          if (header[c].startsWith("delta") || MAY_BE_ZERO.contains(header[c])
              || MAY_BE_ZERO_ROWS.contains(cells[0])) {
            continue;
          }
          try {
            double value = Double.parseDouble(cells[c]);
            assertTrue(value > 0 && Double.isFinite(value), header[c] + " = " + cells[c]
                + " in row: " + lines[r]);
            figures.add(value);
          } catch (NumberFormatException e) {
            assertTrue(c == 0 || TEXT_COLUMNS.contains(header[c]), "not a number: " + header[c]
                + " = " + cells[c] + " in row: " + lines[r]);
          }
        }
      }
    }
    return figures;
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void pdLatency() throws Exception {
    Path json = temp.resolve("pd.json");
    String out = run("pd-latency", shared("aidreams260K.bin"), "-z",
        shared("aidreams260K.tok512.bin"), "--requests", "3", "--prompt-tokens", "12",
        "--max-tokens", "5", "--concurrency", "1,2", "--warmup", "1", "--path-warmup", "5",
        "--threads", "1",
        "--kv-cache-mb", "8", "--json", json.toString());
    assertTrue(out.contains("concurrency 1") && out.contains("concurrency 2"), out);
    // two concurrency levels x (4 metrics x 6 percentiles, the second token's being
    // legitimately zero, + 5 TTFT stages x 3 percentiles + 2 setups x 4 totals + 4 KV pull
    // figures)
    assertEquals(2 * (4 * 6 + 5 * 3 + 2 * 4 + 4), figures(out).size(), out);
    JsonObject figures = new JsonObject(Files.readString(json));
    assertEquals(2, figures.getJsonArray("runs").size());
    assertEquals(5, figures.getInteger("pathWarmup"));
    for (int i = 0; i < 2; i++) {
      JsonObject run = figures.getJsonArray("runs").getJsonObject(i);
      for (String setup : List.of("engine", "pd1p1d")) {
        JsonObject s = run.getJsonObject(setup);
        assertEquals(3, s.getInteger("requests"));
        assertEquals(15, s.getLong("outputTokens"), "every request generates --max-tokens");
        assertTrue(s.getJsonObject("ttftMs").getDouble("p50") > 0, setup);
        assertTrue(s.getJsonObject("tpotMs").getDouble("p99") > 0, setup);
        assertTrue(s.getDouble("outputTokensPerSecond") > 0, setup);
      }
      JsonObject pd = run.getJsonObject("pd1p1d");
      assertTrue(pd.getJsonObject("prefillMs").getDouble("p50") > 0, pd.encode());
      assertTrue(pd.getJsonObject("kvPullMs").getDouble("p50") > 0, pd.encode());
      assertTrue(run.getDouble("kvPullMBps") > 0, run.encode());
      assertTrue(pd.getJsonObject("prefillMs").getDouble("p50")
          < pd.getJsonObject("ttftMs").getDouble("p50"), "prefill is part of the TTFT");
    }
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void kvTransfer() throws Exception {
    Path json = temp.resolve("kv.json");
    String out = run("kv-transfer", shared("aidreams260K.bin"), "--tokens", "100", "--repeat",
        "3", "--warmup", "1", "--threads", "1", "--json", json.toString());
    // 3 paths x 7 figures + 4 stages x 3 figures
    assertEquals(3 * 7 + 4 * 3, figures(out).size(), out);
    JsonObject figures = new JsonObject(Files.readString(json));
    assertEquals(100, figures.getInteger("tokens"));
    assertTrue(figures.getLong("wireBytes") > 100 * figures.getLong("bytesPerToken"));
    assertTrue(figures.getJsonObject("pull").getDouble("medianMBps") > 0);
    assertTrue(figures.getJsonObject("rawSameBytes").getDouble("bestGiBps") > 0);
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void eventBusOverhead() throws Exception {
    Path json = temp.resolve("eb.json");
    String out = run("eventbus-overhead", "--messages", "400", "--warmup", "100", "--json",
        json.toString());
    assertTrue(out.contains("local") && out.contains("clustered"), out);
    // 4 streams (local, clustered) x (window 32, 1) x 8 figures
    assertEquals(4 * 8, figures(out).size(), out);
    JsonObject figures = new JsonObject(Files.readString(json));
    assertEquals(4, figures.getJsonArray("streams").size());
    for (int i = 0; i < 4; i++) {
      JsonObject stream = figures.getJsonArray("streams").getJsonObject(i);
      assertEquals(400, stream.getInteger("messages"));
      assertTrue(stream.getJsonObject("oneWayMicros").getDouble("p99") > 0);
    }
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void routing() throws Exception {
    Path json = temp.resolve("routing.json");
    String out = run("routing", "--ranks", "40", "--prefills", "3", "--decisions", "2000",
        "--warmup", "500", "--waiting", "20", "--threads", "2", "--json", json.toString());
    // 2 decode policies x 2 settings x (claim, release) + 3 prefill policies, x 5 figures
    assertEquals((2 * 2 * 2 + 3) * 5, figures(out).size(), out);
    JsonObject figures = new JsonObject(Files.readString(json));
    assertEquals(11, figures.getJsonArray("rows").size());
    for (int i = 0; i < 11; i++) {
      JsonObject micros = figures.getJsonArray("rows").getJsonObject(i).getJsonObject("micros");
      assertEquals(4000, micros.getLong("count"), "2 threads x 2000 decisions");
      assertTrue(micros.getDouble("p50") > 0);
    }
  }

  /**
   * A tiny random DeepSeek-V3 checkpoint in {@code name} under the test's folder; a draftable
   * one has an MTP module that repeats the main model one token later.
   */
  private Path tinyDeepSeek(String name, RandomDeepSeekCheckpoint.Storage storage,
      boolean draftable) throws IOException {
    Path model = temp.resolve(name);
    RandomDeepSeekCheckpoint.write(model, new RandomDeepSeekCheckpoint.Shape(32, 2, 1, 2, 0, 8,
        8, 8, 8, 48, 16, 8, 2, 2, 1, 1, 64, 64, draftable ? 1 : 0), storage, 16, false, 3,
        draftable);
    return model;
  }

  /**
   * expert-parallel on a tiny random DeepSeek-V3 checkpoint: one engine, then two ranks sharing
   * the experts, in one JVM and in two (the second started by the bench), whose steps spend time
   * in the all-to-all.
   */
  @Test
  void expertParallel() throws Exception {
    Path model = tinyDeepSeek("dsv3", RandomDeepSeekCheckpoint.Storage.F32, false);
    Path json = temp.resolve("ep.json");
    String out = run("expert-parallel", model.toString(), "--ranks", "1,2", "--batch", "2",
        "--prompt-tokens", "4", "--steps", "4", "--warmup-steps", "2", "--threads", "1",
        "--jvms", "1,2", "--json", json.toString());
    // ranks, JVMs, threads/rank, tokens/s, step ms of 1 rank, 2 in 1 JVM, 2 in 2 JVMs
    assertEquals(3 * 5, figures(out).size(), out);
    JsonArray runs = new JsonObject(Files.readString(json)).getJsonArray("runs");
    assertEquals(3, runs.size(), out);
    assertEquals(0, runs.getJsonObject(0).getDouble("allToAllMillisPerStep"));
    assertEquals(1, runs.getJsonObject(1).getInteger("jvms"));
    assertTrue(runs.getJsonObject(1).getDouble("allToAllMillisPerStep") > 0, out);
    assertEquals(2, runs.getJsonObject(2).getInteger("jvms"));
    assertTrue(runs.getJsonObject(2).getDouble("allToAllMillisPerStep") > 0, out);
  }

  /**
   * kv-per-token: DeepSeek-V3's 61 layers of 512 + 64 latent floats against 128 heads of
   * 128 + 64 key and 128 value floats, and a tiny checkpoint's from its engine's layout, whose
   * export carries exactly its layout's bytes per token.
   */
  @Test
  void kvPerToken() throws Exception {
    Path model = tinyDeepSeek("dsv3-kv", RandomDeepSeekCheckpoint.Storage.FP8, false);
    Path json = temp.resolve("kv.json");
    String out = run("kv-per-token", model.toString(), "--prompt-tokens", "20", "--json",
        json.toString());
    JsonArray rows = new JsonObject(Files.readString(json)).getJsonArray("models");
    JsonObject v3 = rows.getJsonObject(0);
    assertEquals(61L * (512 + 64) * 4, v3.getLong("mlaBytesPerToken"), out);
    assertEquals(61L * 128 * (128 + 64 + 128) * 4, v3.getLong("fullHeadBytesPerToken"), out);
    JsonObject tiny = rows.getJsonObject(1);
    assertEquals(2L * (8 + 8) * 4, tiny.getLong("mlaBytesPerToken"), out);
    assertEquals(2L * 2 * (8 + 8 + 8) * 4, tiny.getLong("fullHeadBytesPerToken"), out);
    assertEquals(tiny.getLong("mlaBytesPerToken"), tiny.getDouble("exportedBytesPerToken"), 1e-9,
        out);
  }

  /**
   * weight-formats on a matrix whose columns end in a partial FP8 block and a partial vector:
   * every format and batch timed, each holding its bytes.
   */
  @Test
  void weightFormats() throws Exception {
    Path json = temp.resolve("formats.json");
    String out = run("weight-formats", "--rows", "66", "--cols", "140", "--tokens", "1,5",
        "--repeat", "1", "--run-ms", "5", "--json", json.toString());
    JsonArray runs = new JsonObject(Files.readString(json)).getJsonArray("runs");
    assertEquals(6, runs.size(), out);
    assertEquals(66L * 140 * 4, runs.getJsonObject(0).getLong("bytesHeld"), out);
    assertEquals(66L * 140 * 2, runs.getJsonObject(1).getLong("bytesHeld"), out);
    assertEquals(66L * 140 + 2 * 4, runs.getJsonObject(2).getLong("bytesHeld"), "1x2 scales");
    for (int i = 0; i < runs.size(); i++) {
      assertTrue(runs.getJsonObject(i).getDouble("nanosPerWeightPerToken") > 0, out);
    }
  }

  /**
   * mtp on a tiny draftable DeepSeek-V3 checkpoint: the same greedy output without and with MTP
   * (the command checks it), most drafts kept.
   */
  @Test
  void mtp() throws Exception {
    Path model = tinyDeepSeek("dsv3-mtp", RandomDeepSeekCheckpoint.Storage.F32, true);
    Path json = temp.resolve("mtp.json");
    String out = run("mtp", model.toString(), "--batch", "2", "--prompt-tokens", "4", "--tokens",
        "24", "--warmup-steps", "2", "--threads", "1", "--repeat", "1", "--json",
        json.toString());
    JsonArray runs = new JsonObject(Files.readString(json)).getJsonArray("runs");
    assertEquals(0L, runs.getJsonObject(0).getLong("drafts"), out);
    assertTrue(runs.getJsonObject(1).getDouble("acceptanceRate") > 0.5, out);
    assertTrue(runs.getJsonObject(1).getDouble("tokensPerSecond") > 0, out);
  }

  /**
   * http-load against the embedded 1P1D behind the proxy's OpenAI API: every request
   * completes with exactly max_tokens tokens, and the figures hang together (TTFT within E2E,
   * one gap fewer than tokens per request at most, the prompts as long as asked).
   */
  @Test
  @Timeout(value = 90, unit = TimeUnit.SECONDS)
  void httpLoad() throws Exception {
    try (PdPipeline pipeline = embedded1p1d()) {
      int port = Futures.await(pipeline.serveHttp(proxyConfig()), 30);
      Path json = temp.resolve("http.json");
      String out = run("http-load", "--url", "http://127.0.0.1:" + port, "--rate", "20",
          "--arrivals", "constant", "--requests", "6", "-z", shared("aidreams260K.tok512.bin"),
          "--prompt-tokens", "12", "--max-tokens", "5", "--warmup", "1", "--max-concurrency",
          "4", "--json", json.toString());
      // 4 metrics x 5 figures + requests, completed, output tokens, wall s, req/s, tok/s
      assertEquals(4 * 5 + 6, figures(out).size(), out);
      JsonObject figures = new JsonObject(Files.readString(json));
      assertEquals(PdPipeline.MODEL, figures.getString("model"), "the model /v1/models lists");
      assertEquals(List.of(6, 6, 0), List.of(figures.getInteger("requests"),
          figures.getInteger("completed"), figures.getInteger("failed")), figures.encode());
      assertTrue(figures.getJsonObject("errors").isEmpty(), figures.encode());
      JsonObject summary = figures.getJsonObject("summary");
      assertEquals(30, summary.getLong("outputTokens"), "every request generates max_tokens");
      long gaps = summary.getJsonObject("itlMs").getLong("count");
      assertTrue(gaps > 0 && gaps <= 6 * 4, "at most one gap between two of 5 tokens: " + gaps);
      JsonObject ttft = summary.getJsonObject("ttftMs");
      JsonObject e2e = summary.getJsonObject("e2eMs");
      assertEquals(6, ttft.getLong("count"));
      for (String figure : List.of("p50", "p90", "p99", "max")) {
        assertTrue(ttft.getDouble(figure) > 0 && ttft.getDouble(figure) <= e2e.getDouble(figure),
            figure + ": TTFT " + ttft + " within E2E " + e2e);
      }
      assertTrue(figures.getInteger("promptTokensMin") >= 2
          && figures.getInteger("promptTokensMax") <= 12, figures.encode());
      assertTrue(figures.getDouble("requestsPerSecond") > 0);
    }
  }

  /** Failed requests are counted by status, and the run still reports. */
  @Test
  @Timeout(value = 90, unit = TimeUnit.SECONDS)
  void httpLoadCountsFailuresByStatus() throws Exception {
    try (PdPipeline pipeline = embedded1p1d()) {
      int port = Futures.await(pipeline.serveHttp(proxyConfig()), 30);
      Path json = temp.resolve("http-failing.json");
      Path prompts = Files.writeString(temp.resolve("prompts.txt"), "hello there\n\nhow are you\n");
      String out = run("http-load", "--url", "http://127.0.0.1:" + port, "--model", "nope",
          "--rate", "50", "--requests", "3", "--prompts", prompts.toString(), "--warmup", "0",
          "--json", json.toString());
      assertTrue(out.contains("HTTP 404"), out);
      JsonObject figures = new JsonObject(Files.readString(json));
      assertEquals(List.of(3, 0, 3), List.of(figures.getInteger("requests"),
          figures.getInteger("completed"), figures.getInteger("failed")), figures.encode());
      assertEquals(new JsonObject().put("HTTP 404", 3), figures.getJsonObject("errors"));
    }
  }

  /**
   * reload-lag against the embedded 1P1D's proxy while requests flow one after another: each
   * change of the file's prefill policy shows in a decision under the new policy, and the file
   * ends as it began.
   */
  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void reloadLag() throws Exception {
    try (PdPipeline pipeline = embedded1p1d()) {
      Path config = proxyConfig();
      String before = Files.readString(config);
      String url = "http://127.0.0.1:" + Futures.await(pipeline.serveHttp(config), 30);
      Path json = temp.resolve("reload.json");
      CompletableFuture<String> lag = CompletableFuture.supplyAsync(() -> run("reload-lag",
          config.toString(), "--url", url, "--changes", "2", "--json", json.toString()));
      HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
      HttpRequest request = HttpRequest.newBuilder(URI.create(url + "/v1/completions"))
          .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
          .POST(HttpRequest.BodyPublishers.ofString(new JsonObject()
              .put("model", PdPipeline.MODEL).put("prompt", "hello").put("max_tokens", 2)
              .encode())).build();
      while (!lag.isDone()) {
        HttpResponse<String> answer = http.send(request, HttpResponse.BodyHandlers.ofString());
        assertEquals(200, answer.statusCode(), "no request fails while the policy changes: "
            + answer.body());
      }
      String out = lag.get();
      assertTrue(out.contains("least-prompt-tokens  round-robin"), out);
      JsonObject figures = new JsonObject(Files.readString(json));
      assertEquals(2, figures.getJsonArray("changes").size(), figures.encode());
      for (int i = 0; i < 2; i++) {
        JsonObject change = figures.getJsonArray("changes").getJsonObject(i);
        assertTrue(change.getDouble("replyMs") > 0, change.encode());
        assertTrue(change.getDouble("firstDecisionMs") > 0, change.encode());
      }
      assertEquals(before, Files.readString(config), "the file ends as it began");
    }
  }

  /**
   * join-lag against a status endpoint that starts answering after the command started and
   * then counts one prompt.
   */
  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void joinLag() throws Exception {
    PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    Counter prompts = Counter.builder("duet_prefill_prompts_total").register(metrics);
    int port;
    try (ServerSocket free = new ServerSocket(0)) {
      port = free.getLocalPort();
    }
    Path json = temp.resolve("join.json");
    CompletableFuture<String> lag = CompletableFuture.supplyAsync(() -> run("join-lag",
        "http://127.0.0.1:" + port, "--timeout", "30", "--json", json.toString()));
    Vertx vertx = Vertx.vertx();
    try {
      Futures.await(new StatusServer("127.0.0.1", port, metrics).start(vertx,
          () -> new InstanceInfo("p9", Role.PREFILL, 0, 1, "127.0.0.1", port, 0, "", "", "", 0,
              new InstanceInfo.Load(0, 0, 0, 0, 0), System.currentTimeMillis())), 30);
      prompts.increment();
      String out = lag.get(40, TimeUnit.SECONDS);
      assertTrue(out.contains("first duet_prefill_prompts_total"), out);
      JsonObject figures = new JsonObject(Files.readString(json));
      assertTrue(figures.getDouble("readyMs") > 0, figures.encode());
      assertTrue(figures.getDouble("readyToWorkMs") >= 0, figures.encode());
    } finally {
      Futures.await(vertx.close(), 30);
    }
  }

  /** A proxy on any free port with one HTTP server; its prefill policy is least-prompt-tokens. */
  private Path proxyConfig() throws Exception {
    return Files.writeString(temp.resolve("proxy.yaml"), """
        proxy:
          port: 0
          http-instances: 1
          prefill-policy: least-prompt-tokens
        """);
  }

  private static PdPipeline embedded1p1d() throws Exception {
    return PdPipeline.start(new EngineOptions().modelPath(Path.of(shared("aidreams260K.bin")))
        .tokenizerPath(Path.of(shared("aidreams260K.tok512.bin"))).threads(1)
        .kvCacheBytes(8L << 20).sharedCores(true), 4, true, true);
  }
}
