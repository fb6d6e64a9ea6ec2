package io.duet.deploy;

import static io.duet.service.StatusPages.DECODE_TOKENS;
import static io.duet.service.StatusPages.KV_BLOCKS_USED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.deploy.LaunchedTopology.Run;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint;
import io.duet.service.ServiceTests;
import io.duet.service.StatusPages;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Expert parallelism served end to end: {@code duet.jar up} of a 2P1D whose decode instance has
 * 4 ranks sharing the routed experts ({@code dp: 4, ep: 4}), serving {@code "model": "deepseek"}
 * from a random DeepSeek-V3-shaped checkpoint with DeepSeek-V3's own tokenizer. Greedy text
 * through the proxy equals the engine alone holding every expert, and every rank took part in
 * the all-to-all of the requests' steps (its exchange counter moved), whether it decoded any of
 * them or not. A streamed chat is rendered with DeepSeek-V3's template, which the model's
 * {@code tokenizer_config.json} names.
 */
class ExpertParallelIT {

  /**
   * 4 cluster ports, the proxy's, p0's and p1's KV and status, and the status ports of d0's 4
   * ranks.
   */
  private static final int PORTS = 13;
  private static final int PROXY = 4;
  private static final int RANK0_STATUS = 9;
  private static final int RANKS = 4;
  private static final String MODEL = "deepseek";
  private static final int MAX_TOKENS = 24;
  private static final List<String> PROMPTS = List.of("how are you?", "Once upon a time",
      "你好, world 12345", "def main():", "The robot", "In the quiet lab, a", "Pixels",
      "A dream of");
  private static final Duration TIMEOUT = Duration.ofSeconds(60);
  private static final Pattern EXCHANGE_SECONDS =
      StatusPages.metricPattern("duet_expert_exchange_seconds_total", "");

  private static LaunchedTopology launched;
  private static Engine reference;
  /** The engine's own texts for {@link #PROMPTS}, computed while the topology comes up. */
  private static CompletableFuture<List<String>> expected;
  private static HttpClient http;
  private static StatusPages pages;
  private static boolean running;

  @BeforeAll
  static void upTheTopology() throws Exception {
    launched = new LaunchedTopology("ExpertParallelIT");
    Path model = Files.createTempDirectory(Path.of("target"), "expertparallelit-model-")
        .toAbsolutePath();
    // DeepSeek-V3's vocabulary and tokenizer on a small body: 3 layers (1 dense), 16 routed
    // experts of which 4 per token in 2 of 4 groups, 1 shared.
    RandomDeepSeekCheckpoint.write(model, new RandomDeepSeekCheckpoint.Shape(64, 3, 1, 4, 32,
        16, 16, 8, 16, 96, 32, 16, 4, 4, 2, 1, 129_280, 256, 0),
        RandomDeepSeekCheckpoint.Storage.BF16, 128, false, 17);
    for (String file : List.of("tokenizer.json", "tokenizer_config.json")) {
      Files.copy(ServiceTests.shared("deepseek-v3-tokenizer/" + file), model.resolve(file));
    }
    reference = Engine.open(new EngineOptions().modelPath(model).kvBlocks(64).threads(1));
    expected = CompletableFuture.supplyAsync(() -> PROMPTS.stream()
        .map(ExpertParallelIT::engineText).toList());
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    pages = new StatusPages(http);
    Run up = launched.serving(model, null).up("2p1d-ep4.yaml", PORTS,
        ExpertParallelIT::topology);
    assertEquals(0, up.exit(), up::out);
    running = true;
    String log = Files.readString(launched.log("d0"));
    assertTrue(log.contains("expert parallelism: 1 groups of 4 ranks, each rank holding 4 of "
        + "16 expert slots"), "d0's log says how it split the experts");
  }

  @AfterAll
  static void down() throws Exception {
    try {
      if (running) {
        Run down = launched.duet("down", launched.topology().toString());
        assertEquals(0, down.exit(), down::out);
      }
    } finally {
      if (launched != null) {
        launched.close();
      }
      if (reference != null) {
        if (expected != null) {
          expected.handle((texts, error) -> null).join();
        }
        reference.close();
      }
    }
  }

  @Test
  void greedyTextThroughFourExpertParallelRanksEqualsTheEngineAlone() throws Exception {
    // The ranks warmed up together: each has exchanged before the first request.
    double[] exchangedBefore = new double[RANKS];
    for (int rank = 0; rank < RANKS; rank++) {
      exchangedBefore[rank] = pages.metric(launched.base() + RANK0_STATUS + rank,
          EXCHANGE_SECONDS);
    }
    List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
    for (String prompt : PROMPTS) {
      answers.add(complete(prompt));
    }
    for (int i = 0; i < PROMPTS.size(); i++) {
      HttpResponse<String> response = answers.get(i).get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      assertEquals(200, response.statusCode(), response::body);
      String text = new JsonObject(response.body()).getJsonArray("choices").getJsonObject(0)
          .getString("text");
      assertEquals(expected.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS).get(i), text,
          PROMPTS.get(i));
    }
    int decodingRanks = 0;
    for (int rank = 0; rank < RANKS; rank++) {
      int port = launched.base() + RANK0_STATUS + rank;
      if (pages.metric(port, DECODE_TOKENS) > 0) {
        decodingRanks++;
      }
      assertTrue(pages.metric(port, EXCHANGE_SECONDS) > exchangedBefore[rank],
          "rank " + rank + " took part in the all-to-all of the requests' steps");
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (pages.metric(port, KV_BLOCKS_USED) != 0) {
        assertTrue(System.nanoTime() < deadline, "rank " + rank + " still holds KV blocks");
        Thread.sleep(20);
      }
    }
    assertTrue(decodingRanks >= 2, "the requests were spread over the ranks: " + decodingRanks);
  }

  @Test
  void aStreamedChatIsRenderedWithDeepSeekV3sTemplateAndAnsweredAsTheEngineAloneWould()
      throws Exception {
    JsonObject chat = new JsonObject().put("model", MODEL).put("temperature", 0)
        .put("max_tokens", MAX_TOKENS).put("stream", true).put("messages", new JsonArray()
            .add(new JsonObject().put("role", "user").put("content", "how are you?")));
    HttpResponse<String> response = http.send(HttpRequest.newBuilder(StatusPages.uri(
            launched.base() + PROXY, "/v1/chat/completions")).timeout(TIMEOUT)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(chat.encode())).build(),
        HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode(), response::body);
    StringBuilder content = new StringBuilder();
    for (String line : response.body().split("\n")) {
      if (line.startsWith("data: {")) {
        new JsonObject(line.substring(6)).getJsonArray("choices").stream()
            .map(choice -> ((JsonObject) choice).getJsonObject("delta"))
            .forEach(delta -> content.append(delta.getString("content", "")));
      }
    }
    assertTrue(response.body().trim().endsWith("data: [DONE]"), response::body);
    // DeepSeek-V3's template for one user message (ChatTemplateTest holds it to the Jinja's
    // rendering): the BOS as text, the user's turn, the assistant's; the model may end early.
    String rendered = "<｜begin▁of▁sentence｜><｜User｜>how are you?<｜Assistant｜>";
    expected.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS); // the reference engine is free again
    String alone = new OfflineGenerator(reference, 1).generate(
        reference.tokenizer().encode(rendered, true), SamplingParams.greedy(MAX_TOKENS)).text();
    assertEquals(alone, content.toString());
  }

  private static CompletableFuture<HttpResponse<String>> complete(String prompt) {
    JsonObject request = new JsonObject().put("model", MODEL).put("prompt", prompt)
        .put("temperature", 0).put("max_tokens", MAX_TOKENS).put("ignore_eos", true);
    return http.sendAsync(HttpRequest.newBuilder(StatusPages.uri(launched.base() + PROXY,
            "/v1/completions")).timeout(TIMEOUT).header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(request.encode())).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  private static String engineText(String prompt) {
    return new OfflineGenerator(reference, 1).generate(reference.tokenizer().encode(prompt, true),
        SamplingParams.greedy(MAX_TOKENS).withIgnoreEos(true)).text();
  }

  private static String topology(int first) {
    return launched.smallCluster() + """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: %d,
               proxy: {port: %d, http-instances: 1, decode-policy: least-load}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          p1: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: %d,
               decode: {dp: %d, ep: %d, http-port: %d}}
        """.formatted(first, first + PROXY, first + 1, first + 5, first + 6, first + 2,
        first + 7, first + 8, first + 3, RANKS, RANKS, first + RANK0_STATUS);
  }
}
