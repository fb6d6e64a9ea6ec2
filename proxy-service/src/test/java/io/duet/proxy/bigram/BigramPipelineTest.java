package io.duet.proxy.bigram;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.DecodeEvent;
import io.duet.contract.SamplingSpec;
import io.duet.decode.DecodeOptions;
import io.duet.decode.DecodeVerticle;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.prefill.PrefillOptions;
import io.duet.prefill.PrefillVerticle;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.cluster.ClusterBackend;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The proof that the engine's architecture seam is real: a model of an architecture that only
 * this test package knows (registered by its service file, nothing else changed) runs through
 * the real prefill verticle, a KV transfer over TCP and the real decode verticle, and generates
 * exactly what its own definition says.
 */
class BigramPipelineTest {

  private static final String MODEL = "bigram";
  private static final List<String> PROMPTS = List.of("the robot", "a dream of pixels",
      "hello world and more words than a block holds");
  private static final int MAX_TOKENS = 24;

  @TempDir Path dir;
  private Vertx vertx;
  private Path model;
  private Engine prefillEngine;
  private Engine decodeEngine;
  private ClusterBackend backend;
  private Context backendContext;

  @BeforeEach
  void start() throws Exception {
    model = BigramModel.write(dir.resolve("model.bigram"), 7);
    prefillEngine = Engine.open(options());
    decodeEngine = Engine.open(options());
    vertx = Vertx.vertx();
    PrefillVerticle prefill = new PrefillVerticle(prefillEngine, new PrefillOptions("p0", MODEL,
        "127.0.0.1", 0, 0, 512, 64, 30_000, 10_000),
        new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    DecodeVerticle decode = new DecodeVerticle(decodeEngine, new DecodeOptions("d0", MODEL,
        "127.0.0.1", 0, 0, 1, 8, 64, 10_000, 2),
        new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    await(vertx.deployVerticle(prefill).compose(id -> vertx.deployVerticle(decode)));
    backend = new ClusterBackend(vertx, () -> List.of(prefill.info(), decode.info()), "proxy0", 4,
        30_000);
    backendContext = vertx.getOrCreateContext();
    Promise<Void> opened = Promise.promise();
    backendContext.runOnContext(v -> backend.open().onComplete(opened));
    await(opened.future());
  }

  private EngineOptions options() {
    return new EngineOptions().modelPath(model).kvBlocks(64).threads(1);
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    prefillEngine.close();
    decodeEngine.close();
  }

  @Test
  void theModelIsRecognizedAndItsKvLayoutIsItsOwn() {
    assertEquals(BigramArchitecture.NAME, prefillEngine.info().architecture());
    assertTrue(prefillEngine.layout().fingerprint().contains("/L1/token:f32[1x1]/"),
        prefillEngine.layout().fingerprint());
  }

  @Test
  void prefillKvTransferAndDecodeGenerateWhatTheModelDefines() throws Exception {
    float[][] table = BigramModel.table(Files.readAllBytes(model));
    try (Engine reference = Engine.open(options())) {
      for (String prompt : PROMPTS) {
        String text = complete(prompt);
        assertEquals(BigramModel.greedy(table, prompt, MAX_TOKENS), text, prompt);
        assertEquals(new OfflineGenerator(reference, 1).generate(
            reference.tokenizer().encode(prompt, true), SamplingParams.greedy(MAX_TOKENS)).text(),
            text, prompt);
      }
    }
    // The decode side computed only the generated tokens after the first: every prompt's KV
    // came over the transfer, and the text above depends on all of it.
    assertEquals(PROMPTS.size() * (MAX_TOKENS - 1L), decodeEngine.computedTokens());
    assertEquals(0, decodeEngine.kvStats().usedBlocks());
  }

  private String complete(String prompt) throws Exception {
    Promise<String> done = Promise.promise();
    StringBuilder text = new StringBuilder();
    backendContext.runOnContext(v -> {
      CompletionStream stream = backend.start(new CompletionJob("r-" + prompt.hashCode(), MODEL,
          prompt, SamplingSpec.greedy(MAX_TOKENS)));
      stream.exceptionHandler(done::tryFail);
      stream.handler((DecodeEvent event) -> text.append(event.text()));
      stream.endHandler(x -> done.tryComplete(text.toString()));
    });
    return await(done.future());
  }

  private static <T> T await(Future<T> future) throws Exception {
    return future.toCompletionStage().toCompletableFuture().get(60, TimeUnit.SECONDS);
  }
}
