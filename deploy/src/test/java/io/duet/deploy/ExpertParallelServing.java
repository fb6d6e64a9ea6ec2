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
import java.util.function.IntFunction;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Expert parallelism served end to end, whatever the decode instance's layout: {@code duet.jar
 * up} of a topology whose decode ranks share the routed experts, serving {@code "model":
 * "deepseek"} from a random DeepSeek-V3-shaped checkpoint with DeepSeek-V3's own tokenizer.
 * Greedy text through the proxy equals the engine alone holding every expert, and every rank
 * took part in the all-to-all of the requests' steps (its exchange counter moved), whether it
 * decoded any of them or not. Each subclass starts its topology with {@link #up}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class ExpertParallelServing {

  static final String MODEL = "deepseek";
  static final int MAX_TOKENS = 24;
  static final Duration TIMEOUT = Duration.ofSeconds(60);
  private static final List<String> PROMPTS = List.of("how are you?", "Once upon a time",
      "你好, world 12345", "def main():", "The robot", "In the quiet lab, a", "Pixels",
      "A dream of");
  private static final Pattern EXCHANGE_SECONDS =
      StatusPages.metricPattern("duet_expert_exchange_seconds_total", "");

  LaunchedTopology launched;
  Engine reference;
  /** The engine's own texts for {@link #PROMPTS}, computed while the topology comes up. */
  CompletableFuture<List<String>> expected;
  HttpClient http;
  StatusPages pages;
  private boolean running;

  /**
   * Writes the checkpoint, starts computing the reference texts and brings up the topology
   * {@code topologyOn} writes for its first port ({@code ports} ports from there) as
   * {@code fileName}.
   */
  void up(String fileName, int ports, IntFunction<String> topologyOn) throws Exception {
    launched = new LaunchedTopology(getClass().getSimpleName());
    Path model = Files.createTempDirectory(Path.of("target"),
        getClass().getSimpleName().toLowerCase() + "-model-").toAbsolutePath();
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
        .map(this::engineText).toList());
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    pages = new StatusPages(http);
    Run up = launched.serving(model, null).up(fileName, ports, topologyOn);
    assertEquals(0, up.exit(), up::out);
    running = true;
  }

  /** The proxy's HTTP port, as an offset from the topology's first port. */
  abstract int proxyPort();

  /** The status ports of every decode rank of the expert-parallel instance, as offsets. */
  abstract List<Integer> rankStatusPorts();

  @AfterAll
  void down() throws Exception {
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
  void greedyTextThroughTheExpertParallelRanksEqualsTheEngineAlone() throws Exception {
    List<Integer> ranks = rankStatusPorts();
    // The ranks warmed up together: each has exchanged before the first request.
    double[] exchangedBefore = new double[ranks.size()];
    for (int rank = 0; rank < ranks.size(); rank++) {
      exchangedBefore[rank] = pages.metric(launched.base() + ranks.get(rank), EXCHANGE_SECONDS);
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
    for (int rank = 0; rank < ranks.size(); rank++) {
      int port = launched.base() + ranks.get(rank);
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

  /** What the engine alone answers greedily to {@code prompt} (its tokens after the BOS). */
  String engineText(String prompt, int maxTokens, boolean ignoreEos) {
    return new OfflineGenerator(reference, 1).generate(reference.tokenizer().encode(prompt, true),
        SamplingParams.greedy(maxTokens).withIgnoreEos(ignoreEos)).text();
  }

  private String engineText(String prompt) {
    return engineText(prompt, MAX_TOKENS, true);
  }

  private CompletableFuture<HttpResponse<String>> complete(String prompt) {
    JsonObject request = new JsonObject().put("model", MODEL).put("prompt", prompt)
        .put("temperature", 0).put("max_tokens", MAX_TOKENS).put("ignore_eos", true);
    return http.sendAsync(HttpRequest.newBuilder(StatusPages.uri(launched.base() + proxyPort(),
            "/v1/completions")).timeout(TIMEOUT).header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(request.encode())).build(),
        HttpResponse.BodyHandlers.ofString());
  }
}
