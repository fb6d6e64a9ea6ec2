package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;

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
import java.util.function.IntFunction;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.TestInstance;

/**
 * A topology brought up with {@code duet.jar up}, serving {@code "model": "deepseek"} from a small
 * random DeepSeek-V3-shaped checkpoint with DeepSeek-V3's own tokenizer, and the engine alone on
 * the same checkpoint to hold its answers to; {@code duet.jar down} after the class's tests.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class DeepSeekServing {

  static final String MODEL = "deepseek";
  static final int MAX_TOKENS = 24;
  static final Duration TIMEOUT = Duration.ofSeconds(60);

  LaunchedTopology launched;
  Engine reference;
  HttpClient http;
  StatusPages pages;
  private Path model;
  private boolean running;
  /** Work on {@link #reference}, which must end before it closes. */
  private final List<CompletableFuture<?>> onReference = new ArrayList<>();

  /**
   * Writes the checkpoint and opens the engine alone on it. DeepSeek-V3's vocabulary on a small
   * body: 3 layers (1 dense), 16 routed experts of which 4 per token in 2 of 4 groups, 1 shared,
   * and with {@code mtp} one multi-token prediction module whose drafts are mostly right.
   */
  void openReference(boolean mtp) throws Exception {
    launched = new LaunchedTopology(getClass().getSimpleName());
    model = Files.createTempDirectory(Path.of("target"),
        getClass().getSimpleName().toLowerCase() + "-model-").toAbsolutePath();
    RandomDeepSeekCheckpoint.write(model, new RandomDeepSeekCheckpoint.Shape(64, 3, 1, 4, 32,
        16, 16, 8, 16, 96, 32, 16, 4, 4, 2, 1, 129_280, 256, mtp ? 1 : 0),
        RandomDeepSeekCheckpoint.Storage.BF16, 128, false, 17, mtp);
    for (String file : List.of("tokenizer.json", "tokenizer_config.json")) {
      Files.copy(ServiceTests.shared("deepseek-v3-tokenizer/" + file), model.resolve(file));
    }
    reference = Engine.open(new EngineOptions().modelPath(model).kvBlocks(64).threads(1));
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    pages = new StatusPages(http);
  }

  /**
   * Brings up, serving the checkpoint {@link #openReference} wrote, the topology
   * {@code topologyOn} writes for its first port ({@code ports} ports from there) as
   * {@code fileName}.
   */
  void up(String fileName, int ports, IntFunction<String> topologyOn) throws Exception {
    Run up = launched.serving(model, null).up(fileName, ports, topologyOn);
    assertEquals(0, up.exit(), up::out);
    running = true;
  }

  /** Runs {@code work} on {@link #reference} on another thread; the reference closes after it. */
  <T> CompletableFuture<T> onReference(Supplier<T> work) {
    CompletableFuture<T> result = CompletableFuture.supplyAsync(work);
    onReference.add(result);
    return result;
  }

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
        onReference.forEach(work -> work.handle((result, error) -> null).join());
        reference.close();
      }
    }
  }

  /** The proxy's HTTP port, as an offset from the topology's first port. */
  abstract int proxyPort();

  /** What the engine alone answers greedily to {@code prompt} (its tokens after the BOS). */
  String engineText(String prompt, int maxTokens, boolean ignoreEos) {
    return new OfflineGenerator(reference, 1).generate(reference.tokenizer().encode(prompt, true),
        SamplingParams.greedy(maxTokens).withIgnoreEos(ignoreEos)).text();
  }

  /** {@link #engineText(String, int, boolean)} of {@link #MAX_TOKENS} tokens past the EOS. */
  String engineText(String prompt) {
    return engineText(prompt, MAX_TOKENS, true);
  }

  /** The proxy's greedy completion of {@code prompt}, {@link #MAX_TOKENS} tokens past the EOS. */
  CompletableFuture<HttpResponse<String>> complete(String prompt) {
    return complete(prompt, new JsonArray());
  }

  /**
   * The proxy's greedy completions of {@code prompts}, all sent at once: their bodies in the
   * prompts' order, each answered 200.
   */
  List<JsonObject> completeAll(List<String> prompts) throws Exception {
    List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
    for (String prompt : prompts) {
      answers.add(complete(prompt));
    }
    List<JsonObject> bodies = new ArrayList<>();
    for (CompletableFuture<HttpResponse<String>> answer : answers) {
      HttpResponse<String> response = answer.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      assertEquals(200, response.statusCode(), response::body);
      bodies.add(new JsonObject(response.body()));
    }
    return bodies;
  }

  /** {@link #complete(String)} ending at {@code stop}'s strings. */
  CompletableFuture<HttpResponse<String>> complete(String prompt, JsonArray stop) {
    JsonObject request = new JsonObject().put("model", MODEL).put("prompt", prompt)
        .put("temperature", 0).put("max_tokens", MAX_TOKENS).put("ignore_eos", true);
    if (!stop.isEmpty()) {
      request.put("stop", stop);
    }
    return http.sendAsync(HttpRequest.newBuilder(StatusPages.uri(launched.base() + proxyPort(),
            "/v1/completions")).timeout(TIMEOUT).header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(request.encode())).build(),
        HttpResponse.BodyHandlers.ofString());
  }
}
