package io.duet.proxy.cluster;

import static io.duet.service.ServiceTests.eventually;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.protocol.Addresses;
import io.duet.cluster.protocol.DecodeEvent;
import io.duet.cluster.protocol.Failure;
import io.duet.cluster.protocol.SamplingSpec;
import io.duet.decode.DecodeOptions;
import io.duet.decode.DecodeVerticle;
import io.duet.engine.Engine;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.prefill.PrefillOptions;
import io.duet.prefill.PrefillVerticle;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.duet.service.ServiceTests.Engines;
import io.duet.service.WorkerVerticle;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The whole request path in one JVM on a local event bus: the real prefill and decode verticles
 * with their engines, KV moved over a real TCP connection, driven through the cluster backend.
 * (The multi-JVM, Hazelcast-clustered version of this is the proxy's integration test.)
 */
class PipelineTest {

  private static final String MODEL = "aidreams";

  private final Engines engines = new Engines();
  /** What the backend sees as the registry, in this order. */
  private final List<WorkerVerticle> registry = new CopyOnWriteArrayList<>();
  /** Event-bus requests and sends, by address. */
  private final Map<String, AtomicInteger> sent = new ConcurrentHashMap<>();
  private Vertx vertx;
  private Engine prefillEngine;
  private Engine decodeEngine;
  private Engine reference;
  private ClusterBackend backend;
  private Context context;

  @BeforeEach
  void start() throws Exception {
    vertx = Vertx.vertx();
    vertx.eventBus().addOutboundInterceptor(delivery -> {
      sent.computeIfAbsent(delivery.message().address(), a -> new AtomicInteger()).incrementAndGet();
      delivery.next();
    });
    prefillEngine = engines.open(512);
    decodeEngine = engines.open(512);
    reference = engines.open(512);
    PrefillVerticle prefill = new PrefillVerticle(prefillEngine, new PrefillOptions("p0", MODEL,
        "127.0.0.1", 0, 0, 512, 64, 30_000), new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    await(vertx.deployVerticle(prefill));
    registry.add(prefill);
    registry.add(deployDecode("d0", decodeEngine, 64));
    backend = new ClusterBackend(vertx,
        () -> registry.stream().map(WorkerVerticle::info).toList(), "proxy0", 4, 30_000);
    // The backend is confined to one context, as it is inside the proxy verticle.
    context = vertx.getOrCreateContext();
    Promise<Void> opened = Promise.promise();
    context.runOnContext(v -> backend.open().onComplete(opened));
    await(opened.future());
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  /** @param maxWaiting 0 for an instance that refuses every request as overloaded */
  private DecodeVerticle deployDecode(String id, Engine engine, int maxWaiting) throws Exception {
    DecodeVerticle decode = new DecodeVerticle(engine, new DecodeOptions(id, MODEL, "127.0.0.1",
        0, 0, 8, maxWaiting, 10_000, 2), new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    await(vertx.deployVerticle(decode));
    return decode;
  }

  private DecodeVerticle deployOverloadedDecode(String id) throws Exception {
    return deployDecode(id, engines.open(64), 0);
  }

  private int sentTo(String address) {
    AtomicInteger count = sent.get(address);
    return count == null ? 0 : count.get();
  }

  private static <T> T await(Future<T> future) throws Exception {
    return future.toCompletionStage().toCompletableFuture().get(60, TimeUnit.SECONDS);
  }

  private static SamplingSpec greedy(int maxTokens) {
    return SamplingSpec.greedy(maxTokens);
  }

  /** Runs a job and collects its events; fails with the stream's exception. */
  private Future<List<DecodeEvent>> run(CompletionJob job) {
    Promise<List<DecodeEvent>> done = Promise.promise();
    List<DecodeEvent> events = new ArrayList<>();
    context.runOnContext(v -> {
      CompletionStream stream = backend.start(job);
      stream.exceptionHandler(done::tryFail);
      stream.endHandler(x -> done.tryComplete(events));
      stream.handler(events::add);
    });
    return done.future();
  }

  private String expected(String prompt, int maxTokens) {
    int[] tokens = reference.tokenizer().encode(prompt, true, false);
    return new OfflineGenerator(reference, 1).generate(tokens, SamplingParams.greedy(maxTokens)).text();
  }

  @Test
  void textThroughPrefillAndDecodeEqualsTheEngineAlone() throws Exception {
    String prompt = "Once upon a time";
    List<DecodeEvent> events = await(run(new CompletionJob("r1", MODEL, prompt, greedy(50))));
    StringBuilder text = new StringBuilder();
    for (DecodeEvent e : events) {
      text.append(e.text());
    }
    assertEquals(expected(prompt, 50), text.toString());
    DecodeEvent last = events.get(events.size() - 1);
    assertTrue(last.finishReason() != null, "last event carries a finish reason");
    assertEquals(reference.tokenizer().encode(prompt, true, false).length, last.promptTokens());
  }

  @Test
  void concurrentRequestsAllCompleteAndFreeEveryBlock() throws Exception {
    List<String> prompts = List.of("The robot", "Hello world", "In the quiet lab, a",
        "Once upon a time", "Pixels", "A dream of", "Whispers", "The network");
    List<Future<List<DecodeEvent>>> runs = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      runs.add(run(new CompletionJob("c" + i, MODEL, prompts.get(i % prompts.size()), greedy(40))));
    }
    await(Future.all(runs));
    for (int i = 0; i < 16; i++) {
      StringBuilder text = new StringBuilder();
      for (DecodeEvent e : runs.get(i).result()) {
        text.append(e.text());
      }
      assertEquals(expected(prompts.get(i % prompts.size()), 40), text.toString(), "request " + i);
    }
    assertEquals(0, prefillEngine.kvStats().usedBlocks());
    assertEquals(0, decodeEngine.kvStats().usedBlocks());
  }

  @Test
  void unknownModelFailsAsUnavailable() {
    Exception e = assertThrows(Exception.class,
        () -> await(run(new CompletionJob("u1", "no-such-model", "hi", greedy(5)))));
    CompletionException cause = (CompletionException) e.getCause();
    assertEquals(Failure.UNAVAILABLE, cause.failure());
  }

  @Test
  void aDecodeInstanceThatRefusesAsOverloadedIsSkippedWithoutPrefillingAgain() throws Exception {
    // Equally idle instances go in registry order, so the overloaded one is asked first.
    registry.add(1, deployOverloadedDecode("d-full"));
    String prompt = "Once upon a time";
    List<DecodeEvent> events = await(run(new CompletionJob("r1", MODEL, prompt, greedy(30))));

    StringBuilder text = new StringBuilder();
    events.forEach(e -> text.append(e.text()));
    assertEquals(expected(prompt, 30), text.toString());
    assertEquals(1, sentTo(Addresses.decode("d-full")), "the overloaded instance was asked");
    assertEquals(1, sentTo(Addresses.decode("d0")));
    assertEquals(1, sentTo(Addresses.prefill("p0")), "one prefill, its KV handed to d0");
    eventually("every KV block is free", Duration.ofSeconds(5),
        () -> prefillEngine.kvStats().usedBlocks() == 0
            && decodeEngine.kvStats().usedBlocks() == 0);
  }

  @Test
  void whenDecodeInstancesKeepRefusingTheRequestFailsAsOverloadedAfterABoundedNumber()
      throws Exception {
    registry.removeIf(worker -> worker instanceof DecodeVerticle);
    for (int i = 0; i <= ClusterBackend.DECODE_ATTEMPTS; i++) {
      registry.add(deployOverloadedDecode("d-full-" + i));
    }
    Exception e = assertThrows(Exception.class,
        () -> await(run(new CompletionJob("r1", MODEL, "Once upon a time", greedy(30)))));
    CompletionException failure = assertInstanceOf(CompletionException.class, e.getCause());
    assertEquals(Failure.OVERLOADED, failure.failure());
    assertEquals(503, failure.failure().code());

    int asked = 0;
    for (int i = 0; i <= ClusterBackend.DECODE_ATTEMPTS; i++) {
      int sent = sentTo(Addresses.decode("d-full-" + i));
      assertTrue(sent <= 1, "no instance is asked twice");
      asked += sent;
    }
    assertEquals(ClusterBackend.DECODE_ATTEMPTS, asked);
    assertEquals(1, sentTo(Addresses.prefill("p0")), "no second prefill");
    eventually("the KV lease is released", Duration.ofSeconds(5),
        () -> prefillEngine.kvStats().usedBlocks() == 0);
  }
}
