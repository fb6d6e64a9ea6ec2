package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.deploy.LaunchedTopology.Run;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.FinishReason;
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
 * MTP speculative decoding served end to end: {@code duet.jar up} of a 1P1D with
 * {@code decode.num-speculative-tokens: 1}, serving a draftable random DeepSeek-V3-shaped
 * checkpoint (its MTP module's drafts mostly right) with DeepSeek-V3's tokenizer. The prefill
 * instance computes the MTP layer's KV, which moves with the rest; greedy text through the
 * proxy equals the engine alone without MTP, and the decode instance's draft counters moved.
 */
class MultiTokenPredictionIT {

  /** 3 cluster ports, the proxy's, p0's KV and status, d0's status. */
  private static final int PORTS = 7;
  private static final int PROXY = 3;
  private static final int DECODE_STATUS = 6;
  private static final int MAX_TOKENS = 24;
  private static final List<String> PROMPTS = List.of("how are you?", "Once upon a time",
      "你好, world 12345", "def main():");
  private static final Duration TIMEOUT = Duration.ofSeconds(60);
  private static final Pattern DRAFTS =
      StatusPages.metricPattern("duet_decode_spec_draft_tokens_total", "");
  private static final Pattern ACCEPTED =
      StatusPages.metricPattern("duet_decode_spec_draft_tokens_accepted_total", "");

  private static LaunchedTopology launched;
  private static Engine reference;
  private static HttpClient http;
  private static StatusPages pages;
  private static boolean running;

  @BeforeAll
  static void upTheTopology() throws Exception {
    launched = new LaunchedTopology("MultiTokenPredictionIT");
    Path model = Files.createTempDirectory(Path.of("target"), "mtpit-model-").toAbsolutePath();
    RandomDeepSeekCheckpoint.write(model, new RandomDeepSeekCheckpoint.Shape(64, 3, 1, 4, 32,
        16, 16, 8, 16, 96, 32, 16, 4, 4, 2, 1, 129_280, 256, 1),
        RandomDeepSeekCheckpoint.Storage.BF16, 128, false, 17, true);
    for (String file : List.of("tokenizer.json", "tokenizer_config.json")) {
      Files.copy(ServiceTests.shared("deepseek-v3-tokenizer/" + file), model.resolve(file));
    }
    reference = Engine.open(new EngineOptions().modelPath(model).kvBlocks(64).threads(1));
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    pages = new StatusPages(http);
    Run up = launched.serving(model, null).up("1p1d-mtp.yaml", PORTS,
        MultiTokenPredictionIT::topology);
    assertEquals(0, up.exit(), up::out);
    running = true;
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
        reference.close();
      }
    }
  }

  @Test
  void greedyTextWithMtpThroughPrefillAndDecodeEqualsTheEngineAloneWithout() throws Exception {
    int status = launched.base() + DECODE_STATUS;
    double draftsBefore = pages.metric(status, DRAFTS);
    double acceptedBefore = pages.metric(status, ACCEPTED);
    List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
    for (String prompt : PROMPTS) {
      answers.add(complete(prompt));
    }
    for (int i = 0; i < PROMPTS.size(); i++) {
      HttpResponse<String> response = answers.get(i).get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      assertEquals(200, response.statusCode(), response::body);
      JsonObject body = new JsonObject(response.body());
      assertEquals(MAX_TOKENS, body.getJsonObject("usage").getInteger("completion_tokens"));
      String text = body.getJsonArray("choices").getJsonObject(0).getString("text");
      assertEquals(engineText(PROMPTS.get(i)), text, PROMPTS.get(i));
    }
    double drafts = pages.metric(status, DRAFTS) - draftsBefore;
    double accepted = pages.metric(status, ACCEPTED) - acceptedBefore;
    assertTrue(drafts > 0, "no draft was verified");
    assertTrue(accepted > drafts / 2, accepted + " of " + drafts + " drafts kept");
  }

  /**
   * A stop string that a step's second token (a kept draft's follower) may complete: the text
   * ends where the engine alone ends it, and the usage counts the same tokens.
   */
  @Test
  void aStopStringEndsTheTextWhereTheEngineAloneEndsIt() throws Exception {
    String prompt = "Once upon a time";
    String full = engineText(prompt);
    String stop = full.substring(full.length() / 2, full.length() / 2 + 2);
    SamplingParams params = new SamplingParams(0f, 0, 1f, 0L, MAX_TOKENS, List.of(),
        List.of(stop), true);
    OfflineGenerator.Completion alone = new OfflineGenerator(reference, 1).generate(
        reference.tokenizer().encode(prompt, true), params);
    assertEquals(FinishReason.STOP, alone.finishReason());
    HttpResponse<String> response = complete(prompt, new JsonArray().add(stop))
        .get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    assertEquals(200, response.statusCode(), response::body);
    JsonObject body = new JsonObject(response.body());
    JsonObject choice = body.getJsonArray("choices").getJsonObject(0);
    assertEquals(alone.text(), choice.getString("text"));
    assertEquals("stop", choice.getString("finish_reason"));
    assertEquals(alone.outputTokens().length,
        body.getJsonObject("usage").getInteger("completion_tokens"));
  }

  private static CompletableFuture<HttpResponse<String>> complete(String prompt) {
    return complete(prompt, new JsonArray());
  }

  private static CompletableFuture<HttpResponse<String>> complete(String prompt,
      JsonArray stop) {
    JsonObject request = new JsonObject().put("model", "deepseek").put("prompt", prompt)
        .put("temperature", 0).put("max_tokens", MAX_TOKENS).put("ignore_eos", true);
    if (!stop.isEmpty()) {
      request.put("stop", stop);
    }
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
    return launched.smallCluster().replace("max-num-seqs: 8}",
        "max-num-seqs: 8, num-speculative-tokens: 1}") + """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: %d,
               proxy: {port: %d, http-instances: 1}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: %d,
               decode: {http-port: %d}}
        """.formatted(first, first + PROXY, first + 1, first + 4, first + 5, first + 2,
        first + DECODE_STATUS);
  }
}
