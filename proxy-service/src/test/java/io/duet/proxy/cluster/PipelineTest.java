package io.duet.proxy.cluster;

import static io.duet.service.ServiceTests.eventually;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.ConfigFlags;
import io.duet.cluster.ConfigLoader;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.Addresses;
import io.duet.contract.DecodeAccepted;
import io.duet.contract.DecodeEvent;
import io.duet.contract.DecodeRequest;
import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.PrefillResult;
import io.duet.contract.Role;
import io.duet.contract.SamplingSpec;
import io.duet.decode.DecodeMain;
import io.duet.decode.DecodeOptions;
import io.duet.kv.KvChannel;
import io.duet.decode.DecodeVerticle;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.prefill.PrefillOptions;
import io.duet.prefill.PrefillVerticle;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.ProxyMain;
import io.duet.proxy.ProxyOptions;
import io.duet.proxy.ProxyVerticle;
import io.duet.proxy.routing.DecodeTarget;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingOptions;
import io.duet.proxy.routing.impl.PrefixAffinityPolicy;
import io.duet.proxy.routing.impl.RoundRobinPolicy;
import io.duet.proxy.testpolicy.PinnedDecodePolicy;
import io.duet.service.ServiceRuntime;
import io.duet.service.ServiceTests;
import io.duet.service.ServiceTests.Engines;
import io.duet.service.WorkerVerticle;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.PoolOptions;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The whole request path in one JVM on a local event bus: the real prefill and decode verticles
 * with their engines, KV moved over a real TCP connection, driven through the cluster backend
 * (and once through the proxy's HTTP servers). (The multi-JVM, Hazelcast-clustered version of
 * this is the proxy's integration test.)
 */
class PipelineTest {

  private static final String MODEL = "aidreams";
  private static final String HOST = "127.0.0.1";
  private static final List<String> PROMPTS = List.of("The robot", "Hello world",
      "In the quiet lab, a", "Once upon a time", "Pixels", "A dream of", "Whispers",
      "The network");

  /** How a decode instance does not take a request. */
  enum Refusal {
    /** It refuses it as OVERLOADED: its waiting queue is full. */
    OVERLOADED,
    /** It refuses it as UNAVAILABLE, as one that is shutting down. */
    UNAVAILABLE,
    /** It has just left: the registry lists it, nothing handles its address (NO_HANDLERS). */
    GONE
  }

  private final Engines engines = new Engines();
  /** What the backend sees as the registry, in this order. */
  private final List<Supplier<InstanceInfo>> registry = new CopyOnWriteArrayList<>();
  /** Event-bus requests and sends, by address. */
  private final Map<String, AtomicInteger> sent = new ConcurrentHashMap<>();
  /** The names of the threads that sent them, by address. */
  private final Map<String, Set<String>> senders = new ConcurrentHashMap<>();
  /** The addresses of the event-bus requests and sends, in order. */
  private final List<String> sentInOrder = new CopyOnWriteArrayList<>();
  private final Map<String, PrometheusMeterRegistry> instanceMetrics = new ConcurrentHashMap<>();
  /** The prefill instances' answers, as they went back to the proxy. */
  private final List<PrefillResult> prefilled = new CopyOnWriteArrayList<>();
  private Vertx vertx;
  private Engine prefillEngine;
  private Engine decodeEngine;
  private Engine reference;
  private PrefillVerticle prefill;
  private DecodeVerticle decode;
  private BackendVerticle backend;
  /** Kept in a field: Vert.x 5 may close a client that nothing references. */
  private HttpClient http;

  @BeforeEach
  void start() throws Exception {
    vertx = Vertx.vertx();
    vertx.eventBus().addOutboundInterceptor(delivery -> {
      String address = delivery.message().address();
      sent.computeIfAbsent(address, a -> new AtomicInteger()).incrementAndGet();
      senders.computeIfAbsent(address, a -> ConcurrentHashMap.newKeySet())
          .add(Thread.currentThread().getName());
      sentInOrder.add(address);
      if (delivery.message().body() instanceof JsonObject body
          && body.containsKey("cachedPromptTokens")) {
        prefilled.add(PrefillResult.fromJson(body));
      }
      delivery.next();
    });
    prefillEngine = engines.open(512);
    decodeEngine = engines.open(512);
    reference = engines.open(512);
    prefill = deployPrefill("p0", prefillEngine);
    registry.add(prefill::info);
    decode = deployDecode("d0", decodeEngine, 64);
    registry.add(decode::info);
    backend = open(new ClusterBackend(vertx, this::instances, "proxy0", 4, 30_000));
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  private List<InstanceInfo> instances() {
    return registry.stream().map(Supplier::get).toList();
  }

  /** A backend opened on the context of a verticle of its own, as in a proxy's HTTP server. */
  private static final class BackendVerticle extends AbstractVerticle {
    final ClusterBackend backend;

    BackendVerticle(ClusterBackend backend) {
      this.backend = backend;
    }

    @Override
    public void start(Promise<Void> started) {
      backend.open().onComplete(started);
    }

    @Override
    public void stop(Promise<Void> stopped) {
      backend.close().onComplete(stopped);
    }

    /** Runs {@code action} on the context the backend was opened on. */
    void onContext(Runnable action) {
      context.runOnContext(v -> action.run());
    }
  }

  private BackendVerticle open(ClusterBackend clusterBackend) throws Exception {
    BackendVerticle verticle = new BackendVerticle(clusterBackend);
    await(vertx.deployVerticle(verticle));
    return verticle;
  }

  private PrefillVerticle deployPrefill(String id, Engine engine) throws Exception {
    return deployPrefill(id, engine, 64, 30_000);
  }

  /** @param maxWaiting 0 for an instance that refuses every request as overloaded */
  private PrefillVerticle deployPrefill(String id, Engine engine, int maxWaiting,
      long leaseMillis) throws Exception {
    return deployPrefill(id, MODEL, engine, maxWaiting, leaseMillis);
  }

  private PrefillVerticle deployPrefill(String id, String model, Engine engine, int maxWaiting,
      long leaseMillis) throws Exception {
    PrefillVerticle verticle = new PrefillVerticle(engine, new PrefillOptions(id, model, HOST, 0,
        0, 512, maxWaiting, leaseMillis, 10_000), metricsOf(id));
    await(vertx.deployVerticle(verticle));
    return verticle;
  }

  /** @param maxWaiting 0 for an instance that refuses every request as overloaded */
  private DecodeVerticle deployDecode(String id, Engine engine, int maxWaiting) throws Exception {
    return deployDecode(id, MODEL, engine, maxWaiting);
  }

  private DecodeVerticle deployDecode(String id, String model, Engine engine, int maxWaiting)
      throws Exception {
    return deployDecode(id, model, engine, maxWaiting, KvChannel.defaults());
  }

  /** @param kv how it pulls KV: by default, from p0 of this JVM by the same-JVM handoff */
  private DecodeVerticle deployDecode(String id, String model, Engine engine, int maxWaiting,
      KvChannel kv) throws Exception {
    DecodeVerticle verticle = new DecodeVerticle(engine, new DecodeOptions(id, model, HOST,
        0, 0, 1, 8, maxWaiting, 10_000, 2, kv), metricsOf(id));
    await(vertx.deployVerticle(verticle));
    return verticle;
  }

  /** The metrics of the instance {@code id} deployed here. */
  private PrometheusMeterRegistry metricsOf(String id) {
    return instanceMetrics.computeIfAbsent(id,
        i -> new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
  }

  private DecodeVerticle deployOverloadedDecode(String id) throws Exception {
    return deployDecode(id, engines.open(64), 0);
  }

  /**
   * A registry entry for an idle decode instance with d0's KV layout; nothing of it runs here,
   * so nothing handles its address unless the test registers a consumer there.
   */
  private Supplier<InstanceInfo> listedDecode(String id) {
    InstanceInfo d0 = decode.info();
    InstanceInfo listed = new InstanceInfo(id, Role.DECODE, 0, 1, HOST, d0.httpPort(), 0, MODEL,
        d0.fingerprint(), d0.chatTemplate(), d0.capacity(), new InstanceInfo.Load(0, 0, 0, 0, 0),
        System.currentTimeMillis()).withCapabilities(d0.capabilities());
    return () -> listed;
  }

  /**
   * A registry entry for an idle prefill instance with p0's KV layout; nothing of it runs here,
   * so nothing handles its address unless the test registers a consumer there.
   */
  private Supplier<InstanceInfo> listedPrefill(String id) {
    InstanceInfo p0 = registry.get(0).get();
    InstanceInfo listed = new InstanceInfo(id, Role.PREFILL, 0, 1, HOST, p0.httpPort(),
        p0.kvPort(), MODEL, p0.fingerprint(), p0.chatTemplate(), p0.capacity(),
        new InstanceInfo.Load(0, 0, 0, 0, 0), System.currentTimeMillis())
        .withCapabilities(p0.capabilities());
    return () -> listed;
  }

  /** A decode instance in the registry that does not take requests, as {@code refusal} says. */
  private Supplier<InstanceInfo> refusingDecode(Refusal refusal, String id) throws Exception {
    if (refusal == Refusal.OVERLOADED) {
      return deployOverloadedDecode(id)::info;
    }
    refuseAsUnavailableIf(refusal, Addresses.decode(id, 0));
    return listedDecode(id);
  }

  /** A prefill instance in the registry that does not take requests, as {@code refusal} says. */
  private Supplier<InstanceInfo> refusingPrefill(Refusal refusal, String id) throws Exception {
    if (refusal == Refusal.OVERLOADED) {
      return deployPrefill(id, engines.open(64), 0, 30_000)::info;
    }
    refuseAsUnavailableIf(refusal, Addresses.prefill(id));
    return listedPrefill(id);
  }

  /** For UNAVAILABLE, has {@code address} refuse every request as an instance that drains does. */
  private void refuseAsUnavailableIf(Refusal refusal, String address) throws Exception {
    if (refusal == Refusal.UNAVAILABLE) {
      await(vertx.eventBus().<JsonObject>consumer(address, message -> message.fail(
          Failure.UNAVAILABLE.code(), Failure.UNAVAILABLE.message("draining"))).completion());
    }
  }

  /**
   * Makes the prefill instances of {@code lost} (deployed here, listed in the registry) die once
   * they have answered, before d0 pulls their KV: a decode request to d0 naming one of them as
   * the KV's holder is delivered once that instance is undeployed (its KV server closed) and out
   * of the registry.
   */
  private void losePrefillInstancesBeforeThePull(Map<String, PrefillVerticle> lost) {
    vertx.eventBus().addOutboundInterceptor(delivery -> {
      PrefillVerticle holder = delivery.message().address().equals(Addresses.decode("d0", 0))
          ? lost.remove(DecodeRequest.fromJson((JsonObject) delivery.message().body()).kv()
              .prefillInstanceId()) : null;
      if (holder == null) {
        delivery.next();
        return;
      }
      String id = holder.info().instanceId();
      registry.removeIf(entry -> entry.get().instanceId().equals(id));
      vertx.undeploy(holder.deploymentID()).onComplete(undeployed -> delivery.next());
    });
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

  private Future<List<DecodeEvent>> run(CompletionJob job) {
    return run(backend, job);
  }

  /** Runs a job on {@code on}'s context and collects its events; fails with its exception. */
  private static Future<List<DecodeEvent>> run(BackendVerticle on, CompletionJob job) {
    return start(on, job, false).events();
  }

  /**
   * A job started on a backend's context: its stream, and its events once it ended.
   *
   * @param events fails with the job's exception
   */
  private record Started(BackendVerticle on, Future<CompletionStream> stream,
      Future<List<DecodeEvent>> events) {

    /** Resumes a paused stream: the job gets its remaining events and ends. */
    void resume() {
      on.onContext(() -> stream.result().resume());
    }
  }

  /**
   * Starts a job on {@code on}'s context, collecting its events. A job started {@code paused}
   * grants its decode target no credit: it stays on its target, holding its decode slot, until
   * it is resumed.
   */
  private static Started start(BackendVerticle on, CompletionJob job, boolean paused) {
    Promise<CompletionStream> started = Promise.promise();
    Promise<List<DecodeEvent>> done = Promise.promise();
    List<DecodeEvent> events = new ArrayList<>();
    on.onContext(() -> {
      CompletionStream stream = on.backend.start(job);
      if (paused) {
        stream.pause();
      }
      stream.exceptionHandler(done::tryFail);
      stream.endHandler(x -> done.tryComplete(events));
      stream.handler(events::add);
      started.complete(stream);
    });
    return new Started(on, started.future(), done.future());
  }

  private static String text(List<DecodeEvent> events) {
    StringBuilder text = new StringBuilder();
    events.forEach(e -> text.append(e.text()));
    return text.toString();
  }

  /** The text of a completion streamed as server-sent events. */
  private static String streamedText(Buffer body) {
    StringBuilder text = new StringBuilder();
    for (String event : body.toString().split("\n\n")) {
      assertTrue(event.startsWith("data: "), body.toString());
      String data = event.substring("data: ".length());
      if (!data.equals("[DONE]")) {
        text.append(new JsonObject(data).getJsonArray("choices").getJsonObject(0)
            .getString("text"));
      }
    }
    return text.toString();
  }

  private String expected(String prompt, int maxTokens) {
    return expected(reference, prompt, maxTokens);
  }

  /** The greedy text of {@code prompt} from {@code alone}, the engine without the services. */
  private static String expected(Engine alone, String prompt, int maxTokens) {
    int[] tokens = alone.tokenizer().encode(prompt, true);
    return new OfflineGenerator(alone, 1).generate(tokens, SamplingParams.greedy(maxTokens))
        .text();
  }

  private void awaitEveryBlockFree(Engine... decodeEngines) {
    eventually("every KV block is free", Duration.ofSeconds(5), () -> {
      boolean free = prefillEngine.kvStats().usedBlocks() == 0;
      for (Engine engine : decodeEngines) {
        free &= engine.kvStats().usedBlocks() == 0;
      }
      return free;
    });
  }

  /**
   * A job whose client gets the answer whole is told the same, in the first token's event, the
   * last, and in between at most one per {@link DecodeRequest#COALESCED_EVENT_MILLIS}.
   */
  @Test
  void aCoalescedJobIsToldTheSameInFewEvents() throws Exception {
    String prompt = "Once upon a time";
    List<DecodeEvent> perToken = await(run(new CompletionJob("t1", MODEL, prompt, greedy(40))));
    long start = System.nanoTime();
    List<DecodeEvent> coalesced = await(run(new CompletionJob("c1", MODEL, prompt, List.of(),
        greedy(40), true)));
    long tookMillis = (System.nanoTime() - start) / 1_000_000;
    assertEquals(Told.of(perToken), Told.of(coalesced));
    assertEquals(expected(prompt, 40), text(coalesced));
    assertTrue(coalesced.size() <= 2 + tookMillis / DecodeRequest.COALESCED_EVENT_MILLIS,
        coalesced.size() + " events in " + tookMillis + " ms");
  }

  @Test
  void textThroughPrefillAndDecodeEqualsTheEngineAlone() throws Exception {
    String prompt = "Once upon a time";
    List<DecodeEvent> events = await(run(new CompletionJob("r1", MODEL, prompt, greedy(50))));
    assertEquals(expected(prompt, 50), text(events));
    DecodeEvent last = events.get(events.size() - 1);
    assertTrue(last.finishReason() != null, "last event carries a finish reason");
    assertEquals(reference.tokenizer().encode(prompt, true).length, last.promptTokens());
  }

  /**
   * {@code min_tokens} binds the first token (sampled by the prefill instance) and the others
   * (by the decode instance) alike, and {@code min_p} travels with them: sampled texts through
   * prefill and decode equal the engine's alone, seed for seed.
   */
  @Test
  void minTokensAndMinPThroughPrefillAndDecodeEqualTheEngineAlone() throws Exception {
    String prompt = "Once upon a time";
    int[] tokens = reference.tokenizer().encode(prompt, true);
    int endedEarly = 0;
    for (int seed = 0; seed < 12; seed++) {
      SamplingSpec spec = new SamplingSpec(1f, 0, 1f, seed, 60, List.of(), List.of(), false,
          true, 20, 0.05f);
      SamplingParams params = new SamplingParams(1f, 0, 1f, seed, 60, List.of(), List.of(),
          false, 20, 0.05f);
      OfflineGenerator.Completion alone = new OfflineGenerator(reference, 1).generate(tokens,
          params);
      List<DecodeEvent> events = await(run(new CompletionJob("m" + seed, MODEL, prompt, spec)));
      assertEquals(alone.text(), text(events), "seed " + seed);
      assertTrue(events.get(events.size() - 1).completionTokens() >= 20, "seed " + seed);
      OfflineGenerator.Completion free = new OfflineGenerator(reference, 1).generate(tokens,
          params.withMinTokens(0));
      endedEarly += free.outputTokens().length < 20 ? 1 : 0;
    }
    assertTrue(endedEarly > 0, "min_tokens must have held back an end token for some seed");
    awaitEveryBlockFree(decodeEngine);
  }

  /**
   * OpenAI's {@code n}: the choices of one request run as sequences of their own through
   * prefill and decode, choice k sampled with the request's seed + k, each equal to the engine
   * alone with that seed.
   */
  @Test
  void nSampledChoicesThroughTheProxyEqualTheEngineAloneSeedBySeed() throws Exception {
    ProxyVerticle proxy = deployedProxy(1, new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    String prompt = "Once upon a time";
    int[] tokens = reference.tokenizer().encode(prompt, true);
    Answer answer = await(post(proxy, "/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", prompt).put("n", 4).put("seed", 100).put("temperature", 1)
        .put("max_tokens", 40)));
    assertEquals(200, answer.status(), answer.body().toString());
    JsonArray choices = answer.body().toJsonObject().getJsonArray("choices");
    Set<String> distinct = new HashSet<>();
    for (int k = 0; k < 4; k++) {
      String alone = new OfflineGenerator(reference, 1).generate(tokens,
          new SamplingParams(1f, 0, 1f, 100 + k, 40, List.of(), List.of(), false)).text();
      assertEquals(alone, choices.getJsonObject(k).getString("text"), "choice " + k);
      distinct.add(alone);
    }
    assertTrue(distinct.size() > 1, "the choices were sampled with different seeds");
    awaitEveryBlockFree(decodeEngine);
  }

  @Test
  void aPromptOfTokenIdsIsPrefilledAsThoseTokens() throws Exception {
    String prompt = "Once upon a time";
    List<Integer> tokens = Arrays.stream(reference.tokenizer().encode(prompt, true)).boxed()
        .toList();
    List<DecodeEvent> events = await(run(new CompletionJob("t1", MODEL, null, tokens,
        greedy(40))));
    assertEquals(expected(prompt, 40), text(events));
    assertEquals(tokens.size(), events.get(events.size() - 1).promptTokens());

    Exception e = assertThrows(Exception.class, () -> await(run(new CompletionJob("t2", MODEL,
        null, List.of(1, 512), greedy(5)))));
    CompletionException outside = assertInstanceOf(CompletionException.class, e.getCause());
    assertEquals(Failure.BAD_REQUEST, outside.failure());
    awaitEveryBlockFree(decodeEngine);
  }

  @Test
  void concurrentRequestsAllCompleteAndFreeEveryBlock() throws Exception {
    List<Future<List<DecodeEvent>>> runs = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      runs.add(run(new CompletionJob("c" + i, MODEL, PROMPTS.get(i % PROMPTS.size()), greedy(40))));
    }
    await(Future.all(runs));
    for (int i = 0; i < 16; i++) {
      assertEquals(expected(PROMPTS.get(i % PROMPTS.size()), 40), text(runs.get(i).result()),
          "request " + i);
    }
    assertEquals(0, prefillEngine.kvStats().usedBlocks());
    assertEquals(0, decodeEngine.kvStats().usedBlocks());
  }

  @Test
  void concurrentStreamsThroughAProxyWithTwoEventLoopsEqualTheEngineAlone() throws Exception {
    PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    ProxyVerticle proxy = deployedProxy(2, metrics);
    streamEveryPromptAtOnce(proxy);
    // Each connection goes to the next HTTP server, and each server's backend sends from its
    // own event loop.
    assertEquals(2, senders.get(Addresses.prefill("p0")).size(),
        senders.get(Addresses.prefill("p0")).toString());
    // Every request's TTFT stages, as its instances measured them, reach the proxy's metrics.
    for (String stage : List.of("duet.prefill.queue", "duet.prefill", "duet.decode.queue",
        "duet.kv.pull")) {
      assertEquals(PROMPTS.size(), metrics.get(stage).timer().count(), stage);
    }
    assertTrue(metrics.get("duet.prefill").timer().totalTime(TimeUnit.MICROSECONDS) > 0);
    assertTrue(metrics.get("duet.kv.pull").timer().totalTime(TimeUnit.MICROSECONDS) > 0);
    for (String kind : List.of("prefill", "decode")) {
      assertEquals(PROMPTS.size(), metrics.get("duet.routing.decisions").tag("kind", kind)
          .counter().count(), kind + " decisions");
    }
    awaitEveryBlockFree(decodeEngine);
  }

  /**
   * Streams a greedy completion of every prompt through {@code proxy}'s HTTP API, all at once,
   * and checks that each equals the engine alone.
   */
  private void streamEveryPromptAtOnce(ProxyVerticle proxy) throws Exception {
    List<Future<String>> texts = streams(proxy);
    await(Future.all(texts));
    for (int i = 0; i < PROMPTS.size(); i++) {
      assertEquals(expected(PROMPTS.get(i), 30), texts.get(i).result(), PROMPTS.get(i));
    }
  }

  /**
   * Sends a streamed greedy completion of every prompt, 30 tokens, through {@code proxy}'s HTTP
   * API, all at once: the streamed texts, failed unless the status is 200.
   */
  private List<Future<String>> streams(ProxyVerticle proxy) {
    List<Future<String>> texts = new ArrayList<>();
    for (String prompt : PROMPTS) {
      JsonObject body = new JsonObject().put("model", MODEL).put("prompt", prompt)
          .put("max_tokens", 30).put("temperature", 0).put("stream", true);
      texts.add(post(proxy, "/v1/completions", body)
          .compose(response -> response.status() == 200 ? Future.succeededFuture(response.body())
              : Future.failedFuture("HTTP " + response.status() + ": " + response.body()))
          .map(PipelineTest::streamedText));
    }
    return texts;
  }

  /** An HTTP answer: its status, its Retry-After header and its body. */
  private record Answer(int status, String retryAfter, Buffer body) {
  }

  private Future<Answer> post(ProxyVerticle proxy, String path, JsonObject body) {
    if (http == null) {
      // a connection for every prompt's stream, and one for /admin/reload while they stream
      http = vertx.createHttpClient(new PoolOptions().setHttp1MaxSize(PROMPTS.size() + 1));
    }
    return http.request(HttpMethod.POST, proxy.actualPort(), HOST, path)
        .compose(request -> request.putHeader("Content-Type", "application/json")
            .send(body.encode()))
        .compose(response -> response.body().map(buffer -> new Answer(response.statusCode(),
            response.getHeader("Retry-After"), buffer)));
  }

  /** A proxy of {@code eventLoops} HTTP servers on a random port, with default routing. */
  private ProxyVerticle deployedProxy(int eventLoops, PrometheusMeterRegistry metrics)
      throws Exception {
    ProxyVerticle proxy = new ProxyVerticle(
        ClusterBackend.perEventLoop(vertx, this::instances, "proxy1",
            Routing.create(new RoutingOptions(), metrics), 4, 30_000, List.of(), true, true),
        new ProxyOptions().setHost(HOST).setPort(0).setInstances(eventLoops), metrics);
    await(vertx.deployVerticle(proxy));
    return proxy;
  }

  /** A proxy made from {@code config} as ProxyMain makes it, in front of this test's registry. */
  private ProxyVerticle deployedProxy(DuetConfig config, PrometheusMeterRegistry metrics)
      throws Exception {
    ProxyVerticle proxy = ProxyMain.proxy(vertx, config, this::instances,
        ProxyMain.routing(config, metrics), metrics, null);
    await(vertx.deployVerticle(proxy));
    return proxy;
  }

  /**
   * The proof that routing is a seam: a decode policy that only the tests have (registered in
   * their META-INF/services), named in the proxy's configuration, chooses the decode instance of
   * every request of a proxy wired as ProxyMain wires it, without any change to this backend.
   */
  @Test
  void aDecodePolicyRegisteredByTestCodeAndNamedInTheConfigurationRoutesEveryRequest()
      throws Exception {
    Engine d1Engine = engines.open(512);
    registry.add(deployDecode("d1", d1Engine, 64)::info);
    DuetConfig proxyConfig = DuetConfig.defaults().with(Settings.PROXY_HOST, HOST)
        .with(Settings.PROXY_PORT, 0).with(Settings.PROXY_HTTP_INSTANCES, 2);

    // The policy sends every request to d1, though d0 is as idle and comes first.
    DuetConfig pinned = proxyConfig.with(Settings.INSTANCE_ID, "proxy-pinned")
        .with(Settings.PROXY_DECODE_POLICY, PinnedDecodePolicy.NAME)
        .with(Settings.PROXY_DECODE_POLICY_PARAMS, Map.of("instance", "d1"));
    PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    ProxyVerticle pinnedProxy = deployedProxy(pinned, metrics);
    streamEveryPromptAtOnce(pinnedProxy);
    assertEquals(PROMPTS.size(), sentTo(Addresses.decode("d1", 0)));
    assertEquals(0, sentTo(Addresses.decode("d0", 0)));
    assertEquals(PROMPTS.size(), metrics.get("duet.routing.decisions").tag("kind", "decode")
        .tag("policy", PinnedDecodePolicy.NAME).counter().count());

    // The same requests through a proxy of the default configuration: least-load sends the
    // first to d0, and spreads the others over both.
    DuetConfig leastLoad = proxyConfig.with(Settings.INSTANCE_ID, "proxy-least-load");
    streamEveryPromptAtOnce(deployedProxy(leastLoad,
        new PrometheusMeterRegistry(PrometheusConfig.DEFAULT)));
    assertTrue(sentTo(Addresses.decode("d0", 0)) > 0, "least-load used d0");
    awaitEveryBlockFree(decodeEngine, d1Engine);
  }

  /**
   * Ranks are targets: a decode instance of two ranks, deployed as the decode main deploys it
   * (one engine per rank over one load of the model), next to the one-rank d0. Least-load
   * spreads concurrent requests over every rank of both instances, each rank decodes and frees
   * all its KV, and every text equals the engine alone.
   */
  @Test
  void leastLoadSpreadsRequestsOverEveryRankOfEveryDecodeInstance() throws Exception {
    DuetConfig twoRanks = DuetConfig.defaults().with(Settings.INSTANCE_ID, "dr")
        .with(Settings.CLUSTER_HOST, HOST).with(Settings.DECODE_DP, 2)
        .with(Settings.DECODE_MAX_NUM_SEQS, 8);
    List<Engine> ranks = engines.openRanks(ServiceTests.aidreams(512), 2);
    for (WorkerVerticle rank : ServiceRuntime.deployWorkers(
        new ServiceRuntime.Member(vertx, twoRanks), ranks, DecodeMain::create, MODEL)) {
      registry.add(rank::info);
    }

    List<Future<List<DecodeEvent>>> runs = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      runs.add(run(new CompletionJob("ranks" + i, MODEL, PROMPTS.get(i % PROMPTS.size()),
          greedy(30))));
    }
    await(Future.all(runs));
    for (int i = 0; i < 16; i++) {
      assertEquals(expected(PROMPTS.get(i % PROMPTS.size()), 30), text(runs.get(i).result()),
          "request " + i);
    }
    List<String> targets = List.of(Addresses.decode("d0", 0), Addresses.decode("dr", 0),
        Addresses.decode("dr", 1));
    for (String target : targets) {
      assertTrue(sentTo(target) > 0, "no request went to " + target);
    }
    assertEquals(16, targets.stream().mapToInt(this::sentTo).sum());
    for (Engine rank : ranks) {
      assertTrue(rank.computedTokens() > 0, "every rank decoded");
    }
    awaitEveryBlockFree(decodeEngine, ranks.get(0), ranks.get(1));
  }

  @Test
  void theBackendsOfOneProxyCountEachOthersDecodeRequests() throws Exception {
    Engine d1Engine = engines.open(512);
    registry.add(deployDecode("d1", d1Engine, 64)::info);
    // The instances as a heartbeat showed them, idle: only the proxy's own counts of the
    // requests it sent tell d0 and d1 apart.
    List<InstanceInfo> heartbeats = instances();
    Supplier<ClusterBackend> backends =
        ClusterBackend.perEventLoop(vertx, () -> heartbeats, "proxy1",
            Routing.create(new RoutingOptions(), new SimpleMeterRegistry()), 4, 30_000, List.of(),
            true, true);
    BackendVerticle first = open(backends.get());
    BackendVerticle second = open(backends.get());

    // The first backend's request goes to d0 and stays there: its stream is paused, so d0
    // gets no credit to send the last event.
    Started held = start(first, new CompletionJob("held", MODEL, "Once upon a time",
        greedy(40)), true);
    eventually("the first request went to d0", Duration.ofSeconds(10),
        () -> sentTo(Addresses.decode("d0", 0)) == 1);

    String prompt = "Hello world";
    List<DecodeEvent> events = await(run(second, new CompletionJob("next", MODEL, prompt,
        greedy(20))));
    assertEquals(expected(prompt, 20), text(events));
    assertEquals(1, sentTo(Addresses.decode("d1", 0)), "the second backend counted d0's request");

    first.onContext(() -> held.stream().result().cancel());
    awaitEveryBlockFree(decodeEngine, d1Engine);
  }

  @Test
  void unknownModelFailsAsUnavailable() {
    Exception e = assertThrows(Exception.class,
        () -> await(run(new CompletionJob("u1", "no-such-model", "hi", greedy(5)))));
    CompletionException cause = (CompletionException) e.getCause();
    assertEquals(Failure.UNAVAILABLE, cause.failure());
  }

  @ParameterizedTest
  @EnumSource(Refusal.class)
  void aDecodeInstanceThatDoesNotTakeTheRequestIsReplacedWithoutPrefillingAgain(Refusal refusal)
      throws Exception {
    // Equally idle instances go in registry order, so the refusing one is asked first.
    registry.add(1, refusingDecode(refusal, "d-refusing"));
    String prompt = "Once upon a time";
    List<DecodeEvent> events = await(run(new CompletionJob("r1", MODEL, prompt, greedy(30))));

    assertEquals(expected(prompt, 30), text(events));
    assertEquals(1, sentTo(Addresses.decode("d-refusing", 0)), "the refusing instance was asked");
    assertEquals(1, sentTo(Addresses.decode("d0", 0)));
    assertEquals(1, sentTo(Addresses.prefill("p0")), "one prefill, its KV handed to d0");
    awaitEveryBlockFree(decodeEngine);
  }

  /**
   * The first token comes from the prefill result, but only once a decode instance has taken the
   * request: a request that none takes fails as a whole, its client told nothing before the
   * failure (an HTTP error it may send again, not a stream cut after its first token).
   */
  @Test
  void aRequestNoDecodeInstanceTakesFailsBeforeItsClientIsToldAnything() throws Exception {
    registry.removeIf(entry -> entry.get().role() == Role.DECODE);
    for (int i = 0; i <= Attempts.MAX; i++) {
      registry.add(deployOverloadedDecode("d-full-" + i)::info);
    }
    List<DecodeEvent> told = new CopyOnWriteArrayList<>();
    Promise<Throwable> failed = Promise.promise();
    backend.onContext(() -> {
      CompletionStream stream = backend.backend.start(new CompletionJob("r1", MODEL,
          "Once upon a time", greedy(30)));
      stream.handler(told::add);
      stream.exceptionHandler(failed::tryComplete);
    });
    CompletionException failure = assertInstanceOf(CompletionException.class,
        await(failed.future()));
    assertEquals(Failure.OVERLOADED, failure.failure());
    assertEquals(List.of(), told, "no first token before the failure");
    awaitEveryBlockFree();
  }

  @Test
  void whenDecodeInstancesKeepRefusingTheRequestFailsAsOverloadedAfterABoundedNumber()
      throws Exception {
    registry.removeIf(entry -> entry.get().role() == Role.DECODE);
    for (int i = 0; i <= Attempts.MAX; i++) {
      registry.add(deployOverloadedDecode("d-full-" + i)::info);
    }
    Exception e = assertThrows(Exception.class,
        () -> await(run(new CompletionJob("r1", MODEL, "Once upon a time", greedy(30)))));
    CompletionException failure = assertInstanceOf(CompletionException.class, e.getCause());
    assertEquals(Failure.OVERLOADED, failure.failure());

    int asked = 0;
    for (int i = 0; i <= Attempts.MAX; i++) {
      int sent = sentTo(Addresses.decode("d-full-" + i, 0));
      assertTrue(sent <= 1, "no instance is asked twice");
      asked += sent;
    }
    assertEquals(Attempts.MAX, asked);
    assertEquals(1, sentTo(Addresses.prefill("p0")), "no second prefill");
    awaitEveryBlockFree();
  }

  @Test
  void aDecodeInstanceThatFailsAfterTakingTheRequestIsNotReplaced() throws Exception {
    // It takes the request and streams a token, then fails as UNAVAILABLE: the client has seen
    // the token and the KV may be pulled already, so the request fails where it is.
    registry.add(1, listedDecode("d-failing"));
    await(vertx.eventBus().<JsonObject>consumer(Addresses.decode("d-failing", 0), message -> {
      DecodeRequest request = DecodeRequest.fromJson(message.body());
      message.reply(new DecodeAccepted(request.requestId(), "d-failing", 0).toJson());
      vertx.eventBus().send(request.streamAddress(), new DecodeEvent(request.requestId(), 0,
          "Once", 1, 1, request.promptTokens(), null, null, null).toJson());
      vertx.eventBus().send(request.streamAddress(), new DecodeEvent(request.requestId(), 1,
          "", 0, 1, request.promptTokens(), null, Failure.UNAVAILABLE.name(), "shutting down")
          .toJson());
    }).completion());

    Exception e = assertThrows(Exception.class,
        () -> await(run(new CompletionJob("r1", MODEL, "Once upon a time", greedy(30)))));
    CompletionException failure = assertInstanceOf(CompletionException.class, e.getCause());
    assertEquals(Failure.UNAVAILABLE, failure.failure());
    assertEquals("shutting down", failure.getMessage());
    assertEquals(0, sentTo(Addresses.decode("d0", 0)), "the request was not moved");
    awaitEveryBlockFree();
  }

  // ---------------------------------------------------------------- the first token

  /**
   * stories260K (grouped-query attention), with aidreams' vocabulary of the same size standing
   * in for its own tokenizer, which is not available: its text is then a faithful function of
   * the token ids it generates.
   */
  private static EngineOptions stories() {
    return new EngineOptions().modelPath(ServiceTests.shared("stories260K.bin"))
        .tokenizerPath(ServiceTests.shared("aidreams260K.tok512.bin")).kvBlocks(512).threads(1);
  }

  /**
   * A DeepSeek-V3-shaped checkpoint of random weights (multi-head latent attention, experts),
   * with DeepSeek-V3's tokenizer: the MLA latent is what its KV moves as.
   */
  private static EngineOptions deepSeek() throws IOException {
    Path model = Files.createTempDirectory(Path.of("target"), "pipelinetest-deepseek-")
        .toAbsolutePath();
    RandomDeepSeekCheckpoint.write(model, new RandomDeepSeekCheckpoint.Shape(64, 3, 1, 4, 32,
        16, 16, 8, 16, 96, 32, 16, 4, 4, 2, 1, 129_280, 256, 0),
        RandomDeepSeekCheckpoint.Storage.BF16, 128, false, 17);
    for (String file : List.of("tokenizer.json", "tokenizer_config.json")) {
      Files.copy(ServiceTests.shared("deepseek-v3-tokenizer/" + file), model.resolve(file));
    }
    return new EngineOptions().modelPath(model).kvBlocks(512).threads(1);
  }

  /** What the events of a completion tell the client: text, usage and finish reason. */
  private record Told(String text, int promptTokens, int completionTokens, String finish) {
    static Told of(List<DecodeEvent> events) {
      DecodeEvent last = events.get(events.size() - 1);
      return new Told(PipelineTest.text(events), last.promptTokens(), last.completionTokens(),
          last.finishReason());
    }
  }

  private static SamplingSpec seeded(long seed, int maxTokens) {
    return new SamplingSpec(1f, 0, 1f, seed, maxTokens, List.of(), List.of(), false);
  }

  private static SamplingSpec greedyUntil(int maxTokens, List<Integer> stopTokens,
      List<String> stop) {
    return new SamplingSpec(0f, 0, 1f, 0L, maxTokens, stopTokens, stop, false);
  }

  /**
   * Greedy, seeded, stop strings (held back, hit by the first token or later), one and two
   * tokens: the client is told the same through a proxy that streams the KV while prefill runs,
   * one that streams the first token from the prefill result, and one that waits for the
   * decode instance, with a decode stream coalesced or not, and greedy text equals the
   * engine's alone.
   */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"aidreams", "stories", "deepseek"})
  void theFirstTokenFromThePrefillResultChangesNothingTheClientIsTold(String model)
      throws Exception {
    Engine alone = reference;
    if (!model.equals("aidreams")) {
      EngineOptions options = model.equals("stories") ? stories() : deepSeek();
      registry.add(deployPrefill("p-" + model, model, engines.open(options), 64, 30_000)::info);
      registry.add(deployDecode("d-" + model, model, engines.open(options), 64)::info);
      alone = engines.open(options);
    }
    Routing routing = Routing.create(new RoutingOptions(), new SimpleMeterRegistry());
    BackendVerticle streaming = eventLoop(routing, true, true);
    BackendVerticle fast = eventLoop(routing, true);
    BackendVerticle slow = eventLoop(routing, false);
    List<SamplingSpec> specs = List.of(greedy(30), greedy(1), greedy(2), seeded(1, 30),
        seeded(7, 30), greedyUntil(30, List.of(), List.of("e")),
        greedyUntil(30, List.of(), List.of(",", "ing")));
    int n = 0;
    for (String prompt : PROMPTS.subList(0, 4)) {
      for (SamplingSpec spec : specs) {
        String what = model + ", " + prompt + ", " + spec;
        Told viaStreaming = Told.of(await(run(streaming, new CompletionJob("k" + n, model,
            prompt, spec))));
        Told viaFast = Told.of(await(run(fast, new CompletionJob("f" + n, model, prompt, spec))));
        Told viaSlow = Told.of(await(run(slow, new CompletionJob("s" + n, model, prompt, spec))));
        Told coalescedViaFast = Told.of(await(run(fast, new CompletionJob("cf" + n, model,
            prompt, List.of(), spec, true))));
        Told coalescedViaSlow = Told.of(await(run(slow, new CompletionJob("cs" + n++, model,
            prompt, List.of(), spec, true))));
        assertEquals(viaSlow, viaFast, what);
        assertEquals(viaSlow, viaStreaming, what);
        assertEquals(viaSlow, coalescedViaFast, what + ", coalesced");
        assertEquals(viaSlow, coalescedViaSlow, what + ", coalesced");
        if (spec.temperature() == 0 && spec.stop().isEmpty()) {
          assertEquals(expected(alone, prompt, spec.maxTokens()), viaFast.text(), what);
        }
      }
    }
    awaitEveryBlockFree(decodeEngine);
  }

  /**
   * The same-JVM handoff, which every other test here takes, and TCP tell the client the same,
   * the KV streamed while prefill runs or moved after it: the decode instance that pulls over
   * TCP replaces the one that copies in the registry, and each counts its pulls on its path.
   */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"aidreams", "stories"})
  void theSameJvmHandoffTellsTheClientWhatTcpTells(String model) throws Exception {
    EngineOptions options = model.equals("aidreams") ? null : stories();
    String copying = "d0";
    int listedAt = 1;
    Engine copyingEngine = decodeEngine;
    if (options != null) {
      registry.add(deployPrefill("p-" + model, model, engines.open(options), 64, 30_000)::info);
      copying = "d-" + model;
      copyingEngine = engines.open(options);
      listedAt = registry.size();
      registry.add(deployDecode(copying, model, copyingEngine, 64)::info);
    }
    Engine tcpEngine = options == null ? engines.open(512) : engines.open(options);
    DecodeVerticle tcp = deployDecode("d-tcp", model, tcpEngine, 64,
        KvChannel.defaults().withSameJvmHandoff(false));
    Routing routing = Routing.create(new RoutingOptions(), new SimpleMeterRegistry());
    List<BackendVerticle> backends = List.of(eventLoop(routing, true, true),
        eventLoop(routing, true));
    List<SamplingSpec> specs = List.of(greedy(30), seeded(3, 30),
        greedyUntil(30, List.of(), List.of("ing")));
    List<Told> copied = new ArrayList<>();
    List<Told> sent = new ArrayList<>();
    for (List<Told> told : List.of(copied, sent)) {
      if (told == sent) {
        registry.set(listedAt, tcp::info);
      }
      for (String prompt : PROMPTS.subList(0, 3)) {
        for (SamplingSpec spec : specs) {
          for (BackendVerticle backend : backends) {
            told.add(Told.of(await(run(backend, new CompletionJob(UUID.randomUUID().toString(),
                model, prompt, spec)))));
          }
        }
      }
    }
    assertEquals(copied, sent);
    assertTrue(pulls(copying, "same-jvm") > 0 && pulls(copying, "tcp") == 0,
        copying + " copied every KV it took");
    assertTrue(pulls("d-tcp", "tcp") > 0 && pulls("d-tcp", "same-jvm") == 0,
        "d-tcp pulled every KV it took over TCP");
    awaitEveryBlockFree(copyingEngine, tcpEngine);
  }

  /** KV pulls of decode instance {@code id} that imported their KV by {@code path}. */
  private double pulls(String id, String path) {
    return metricsOf(id).find("duet_kv_pulls_total").tag("path", path).counter().count();
  }

  /**
   * A request that its first token ends ({@code max_tokens} 1, a stop token standing for an end
   * token, a stop string) is answered from the prefill result: no decode instance is asked, and
   * the prefill instance holds no KV and no lease by the time the client has its answer.
   */
  @Test
  void aRequestItsFirstTokenEndsNeverReachesADecodeInstanceAndHoldsNoKvOnceAnswered()
      throws Exception {
    String prompt = "Once upon a time";
    int firstToken = new OfflineGenerator(reference, 1).generate(
        reference.tokenizer().encode(prompt, true), SamplingParams.greedy(1)).outputTokens()[0];
    String firstText = expected(prompt, 1);
    Map<SamplingSpec, String> endsAtFirst = Map.of(greedy(1), "length",
        greedyUntil(30, List.of(firstToken), List.of()), "stop",
        greedyUntil(30, List.of(), List.of(firstText.strip())), "stop");
    Routing routing = Routing.create(new RoutingOptions(), new SimpleMeterRegistry());
    BackendVerticle fast = eventLoop(routing, true);
    BackendVerticle slow = eventLoop(routing, false);
    PrometheusMeterRegistry p0 = metricsOf("p0");
    int n = 0;
    for (var ending : endsAtFirst.entrySet()) {
      List<DecodeEvent> events = await(run(fast, new CompletionJob("f" + n, MODEL, prompt,
          ending.getKey())));
      assertEquals(0, p0.get("duet_kv_leases").gauge().value(), ending.getKey().toString());
      assertEquals(0, p0.get("duet_kv_blocks_used").gauge().value(), ending.getKey().toString());
      assertEquals(1, events.size());
      assertEquals(ending.getValue(), events.get(0).finishReason());
      assertEquals(Told.of(await(run(slow, new CompletionJob("s" + n++, MODEL, prompt,
          ending.getKey())))), Told.of(events), ending.getKey().toString());
    }
    assertEquals(endsAtFirst.size(), sentTo(Addresses.decode("d0", 0)),
        "only the proxy that does not stream the first token asked the decode instance");
    awaitEveryBlockFree(decodeEngine);
  }

  /**
   * A decode instance of an older build announces no capabilities: the proxy neither streams
   * the first token from the prefill result nor the KV while prefill runs (that decode instance
   * would send the first token again), and the client is told what it is told without them.
   */
  @Test
  void aDecodeInstanceThatAnnouncesNothingGetsNeitherTheFirstTokenNorAStreamedKv()
      throws Exception {
    registry.set(1, () -> decode.info().withCapabilities(Set.of()));
    List<DecodeRequest> asked = new CopyOnWriteArrayList<>();
    vertx.eventBus().addOutboundInterceptor(delivery -> {
      if (delivery.message().address().equals(Addresses.decode("d0", 0))) {
        asked.add(DecodeRequest.fromJson((JsonObject) delivery.message().body()));
      }
      delivery.next();
    });
    Routing routing = Routing.create(new RoutingOptions(), new SimpleMeterRegistry());
    BackendVerticle streaming = eventLoop(routing, true, true);
    BackendVerticle slow = eventLoop(routing, false);
    String prompt = "Once upon a time";
    Told viaStreaming = Told.of(await(run(streaming, new CompletionJob("k1", MODEL, prompt,
        greedy(20)))));
    assertEquals(Told.of(await(run(slow, new CompletionJob("s1", MODEL, prompt, greedy(20))))),
        viaStreaming);
    assertEquals(expected(prompt, 20), viaStreaming.text());
    assertEquals(2, asked.size());
    assertFalse(asked.get(0).firstTokenSent() || asked.get(0).kvStreamed(),
        "the decode instance streams every token, from KV pulled after the prefill");
    awaitEveryBlockFree(decodeEngine);
  }

  /**
   * With the KV streamed while prefill runs, {@code max_tokens} 1 still never reaches a decode
   * instance; a request whose first token turns out to end it (an end token, a stop string) was
   * given to one as its prefill started, and is let go of there at once: the client is told
   * what it is told without streaming, and no KV, lease or decode slot stays held on either
   * side.
   */
  @Test
  void aStreamedRequestItsFirstTokenEndsIsLetGoOfOnBothSides() throws Exception {
    String prompt = "Once upon a time";
    int firstToken = new OfflineGenerator(reference, 1).generate(
        reference.tokenizer().encode(prompt, true), SamplingParams.greedy(1)).outputTokens()[0];
    String firstText = expected(prompt, 1);
    Routing routing = Routing.create(new RoutingOptions(), new SimpleMeterRegistry());
    BackendVerticle streaming = eventLoop(routing, true, true);
    BackendVerticle slow = eventLoop(routing, false);

    List<DecodeEvent> one = await(run(streaming, new CompletionJob("k1", MODEL, prompt,
        greedy(1))));
    assertEquals("length", one.get(0).finishReason());
    assertEquals(0, sentTo(Addresses.decode("d0", 0)), "max_tokens 1 never reaches decode");

    int n = 0;
    for (SamplingSpec ending : List.of(greedyUntil(30, List.of(firstToken), List.of()),
        greedyUntil(30, List.of(), List.of(firstText.strip())))) {
      List<DecodeEvent> events = await(run(streaming, new CompletionJob("k" + n, MODEL, prompt,
          ending)));
      assertEquals(1, events.size(), ending.toString());
      assertEquals("stop", events.get(0).finishReason());
      assertEquals(Told.of(await(run(slow, new CompletionJob("s" + n++, MODEL, prompt,
          ending)))), Told.of(events), ending.toString());
    }
    awaitEveryBlockFree(decodeEngine);
    awaitNoKvHeld();
  }

  /** Waits until p0 holds no lease or KV block and d0 no KV block or running request. */
  private void awaitNoKvHeld() {
    eventually("no KV held, leased or decoded", Duration.ofSeconds(5), () ->
        metricsOf("p0").get("duet_kv_leases").gauge().value() == 0
            && metricsOf("p0").get("duet_kv_blocks_used").gauge().value() == 0
            && metricsOf("d0").get("duet_kv_blocks_used").gauge().value() == 0
            && metricsOf("d0").get("duet_decode_running").gauge().value() == 0);
  }

  /** Where a request is when its client goes away. */
  enum Stage {
    /** Its prompt is with the prefill instance. */
    PREFILLING,
    /**
     * The client has the first token, from the prefill result, which it gets once the decode
     * instance has taken the request: the decode instance may be pulling its KV.
     */
    FIRST_TOKEN,
    /** The client has a token from the decode instance, which is decoding the rest. */
    DECODING
  }

  @ParameterizedTest
  @EnumSource(Stage.class)
  void aRequestCancelledAtAnyStageLeavesEveryKvGaugeAt0(Stage stage) throws Exception {
    Promise<Void> cancelled = Promise.promise();
    CompletionJob job = new CompletionJob("c1", MODEL, LONG_ANSWER, greedy(40));
    backend.onContext(() -> {
      CompletionStream stream = backend.backend.start(job);
      List<DecodeEvent> events = new ArrayList<>();
      stream.handler(event -> {
        events.add(event);
        if (events.size() == stage.ordinal()) {
          stream.cancel();
          cancelled.complete();
        }
      });
      if (stage == Stage.PREFILLING) {
        // once the prompt is on its way to the prefill instance
        vertx.eventBus().addOutboundInterceptor(delivery -> {
          delivery.next();
          if (delivery.message().address().equals(Addresses.prefill("p0"))) {
            backend.onContext(() -> {
              stream.cancel();
              cancelled.tryComplete();
            });
          }
        });
      }
    });
    await(cancelled.future());
    awaitNoKvHeld();
    if (stage == Stage.PREFILLING) {
      // the backend streams the KV: its decode target may be asked as the prefill starts
      assertTrue(sentTo(Addresses.decode("d0", 0)) <= 1);
    } else {
      assertEquals(1, sentTo(Addresses.decode("d0", 0)));
    }
  }

  /**
   * The client goes away as the decode instance is handed a KV that its prefill instance is
   * still computing (the default backend streams it): the prefill's lease, the decode's import
   * and reservation all end, on both sides.
   */
  @Test
  void aStreamedRequestCancelledWhileItsPrefillRunsLeavesEveryKvGaugeAt0() throws Exception {
    Promise<Void> cancelled = Promise.promise();
    CompletionJob job = new CompletionJob("c1", MODEL, LONG_ANSWER, greedy(40));
    backend.onContext(() -> {
      CompletionStream stream = backend.backend.start(job);
      stream.handler(event -> { });
      vertx.eventBus().addOutboundInterceptor(delivery -> {
        delivery.next();
        if (delivery.message().address().equals(Addresses.decode("d0", 0))) {
          assertTrue(DecodeRequest.fromJson((JsonObject) delivery.message().body()).kvStreamed());
          backend.onContext(() -> {
            stream.cancel();
            cancelled.tryComplete();
          });
        }
      });
    });
    await(cancelled.future());
    awaitNoKvHeld();
  }

  // ---------------------------------------------------------------- scheduling

  private static final DecodeTarget D0 = new DecodeTarget("d0", 0);
  /** A prompt whose greedy answer runs past the 4 credits a backend here grants at first. */
  private static final String LONG_ANSWER = "Once upon a time";

  /** A backend of a proxy routing with {@code routing}, on an event loop of its own. */
  private BackendVerticle eventLoop(Routing routing) throws Exception {
    return eventLoop(routing, true);
  }

  /** ... that streams the first token from the prefill result, or not (and no KV while prefill runs). */
  private BackendVerticle eventLoop(Routing routing, boolean firstTokenFromPrefill)
      throws Exception {
    return eventLoop(routing, firstTokenFromPrefill, false);
  }

  /** ... that streams the first token from the prefill result, and the KV while prefill runs. */
  private BackendVerticle eventLoop(Routing routing, boolean firstTokenFromPrefill,
      boolean kvLayerStreaming) throws Exception {
    return open(ClusterBackend.perEventLoop(vertx, this::instances, "proxy-" + UUID.randomUUID(),
        routing, 4, 30_000, List.of(), firstTokenFromPrefill, kvLayerStreaming).get());
  }

  /**
   * Starts a request that takes a decode slot and keeps it, its stream paused, once it has it.
   */
  private Started holdASlot(BackendVerticle on, Routing routing, String id) {
    int before = routing.inFlight().requests(D0);
    Started held = start(on, new CompletionJob(id, MODEL, LONG_ANSWER, greedy(40)), true);
    eventually(id + " has its decode slot", Duration.ofSeconds(10),
        () -> routing.inFlight().requests(D0) == before + 1);
    return held;
  }

  private static Failure failureOf(Exception e) {
    return assertInstanceOf(CompletionException.class, e.getCause() == null ? e : e.getCause())
        .failure();
  }

  @ParameterizedTest(name = "{0} decode instance(s)")
  @ValueSource(ints = {1, 2})
  void withARankCapOf2NoDecodeTargetEverHoldsMoreThan2OfTheProxysRequestsAndAll12Complete(
      int decodes) throws Exception {
    List<Engine> decodeEngines = new ArrayList<>(List.of(decodeEngine));
    List<DecodeTarget> targets = new ArrayList<>(List.of(D0));
    if (decodes == 2) {
      decodeEngines.add(engines.open(512));
      registry.add(deployDecode("d1", decodeEngines.get(1), 64)::info);
      targets.add(new DecodeTarget("d1", 0));
    }
    SimpleMeterRegistry metrics = new SimpleMeterRegistry();
    Routing routing = Routing.create(new RoutingOptions().setDecodeRankCap(2), metrics);
    List<BackendVerticle> loops = List.of(eventLoop(routing), eventLoop(routing));
    AtomicInteger peak = new AtomicInteger();
    long sampler = vertx.setPeriodic(1, t -> targets.forEach(target ->
        peak.accumulateAndGet(routing.inFlight().requests(target), Math::max)));

    // The first requests fill every target up to the cap and keep their slots (their streams
    // are paused) until all the others wait in the proxy.
    int held = 2 * decodes;
    List<Started> jobs = new ArrayList<>();
    List<String> prompts = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      if (i == held) {
        eventually("the first requests fill every target", Duration.ofSeconds(10),
            () -> targets.stream().allMatch(target -> routing.inFlight().requests(target) == 2));
      }
      prompts.add(i < held ? LONG_ANSWER : PROMPTS.get(i % PROMPTS.size()));
      jobs.add(start(loops.get(i % 2), new CompletionJob("cap-" + i, MODEL, prompts.get(i),
          greedy(30)), i < held));
    }
    eventually("the other requests wait in the proxy", Duration.ofSeconds(10),
        () -> routing.waiting() == 12 - held);
    for (DecodeTarget target : targets) {
      assertEquals(2.0, metrics.get("duet.routing.decode.in.flight")
          .tag("decode_instance", target.instanceId()).gauge().value());
    }
    jobs.subList(0, held).forEach(Started::resume);
    await(Future.all(jobs.stream().map(Started::events).toList()));
    vertx.cancelTimer(sampler);

    for (int i = 0; i < 12; i++) {
      assertEquals(expected(prompts.get(i), 30), text(jobs.get(i).events().result()),
          "request " + i);
    }
    assertEquals(2, peak.get(), "every target was full, none ever held more");
    assertEquals(12, metrics.get("duet.routing.queue.wait").timer().count());
    assertTrue(metrics.get("duet.routing.queue.wait").timer().max(TimeUnit.MILLISECONDS) > 0);
    awaitEveryBlockFree(decodeEngines.toArray(Engine[]::new));
  }

  @Test
  void aFullQueueAnswers429WithRetryAfterAndAnOpenAiErrorBodyBeforeThePrefill()
      throws Exception {
    PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    Routing routing = Routing.create(new RoutingOptions().setDecodeRankCap(1).setQueueSize(1),
        metrics);
    Supplier<ClusterBackend> backends = ClusterBackend.perEventLoop(vertx, this::instances,
        "proxy-full", routing, 4, 30_000, List.of(), true, true);
    BackendVerticle holder = open(backends.get());
    ProxyVerticle proxy = new ProxyVerticle(backends,
        new ProxyOptions().setHost(HOST).setPort(0).setInstances(1), metrics);
    await(vertx.deployVerticle(proxy));
    Started held = holdASlot(holder, routing, "held");
    Future<List<DecodeEvent>> waiting = run(holder, new CompletionJob("waiting", MODEL,
        "Hello world", greedy(20)));
    eventually("the second request waits", Duration.ofSeconds(10), () -> routing.waiting() == 1);

    Answer refused = await(post(proxy, "/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", "Pixels").put("max_tokens", 5)));
    assertEquals(429, refused.status(), refused.body().toString());
    assertEquals("1", refused.retryAfter());
    JsonObject error = refused.body().toJsonObject().getJsonObject("error");
    assertEquals("overloaded", error.getString("type"));
    assertTrue(error.getString("message").contains("queue"), error.getString("message"));
    assertTrue(error.containsKey("param") && error.containsKey("code"), error.encode());
    assertEquals(2, sentTo(Addresses.prefill("p0")), "the refused request was not prefilled");
    String scrape = metrics.scrape();
    for (String series : List.of("duet_routing_queue_length 1.0",
        "duet_routing_decode_in_flight{decode_instance=\"d0\",rank=\"0\"} 1.0",
        "duet_routing_prefill_tokens_in_flight{prefill_instance=\"p0\"} 0.0",
        "duet_routing_queue_wait_seconds_count 1",
        "duet_routing_decisions_total{kind=\"decode\",policy=\"least-load\"} 1.0")) {
      assertTrue(scrape.contains(series), series + " in:\n" + scrape);
    }

    held.resume();
    assertEquals(expected(LONG_ANSWER, 40), text(await(held.events())));
    assertEquals(expected("Hello world", 20), text(await(waiting)));
    awaitEveryBlockFree(decodeEngine);
  }

  @Test
  void aRequestThatFindsTheQueueFullAfterItsPrefillFailsAsOverloadedAndFreesItsKvLease()
      throws Exception {
    // A queue of 0: the request is refused as soon as it finds no slot.
    Routing routing = Routing.create(new RoutingOptions().setDecodeRankCap(1).setQueueSize(0),
        new SimpleMeterRegistry());
    BackendVerticle loop = eventLoop(routing);
    Started held = holdASlot(loop, routing, "held");

    Exception e = assertThrows(Exception.class, () -> await(run(loop, new CompletionJob(
        "refused", MODEL, "Hello world", greedy(20)))));
    assertEquals(Failure.OVERLOADED, failureOf(e));
    assertEquals(2, sentTo(Addresses.prefill("p0")));
    // Its lease would hold the blocks for 30 s.
    eventually("the refused request's KV lease is freed", Duration.ofSeconds(5),
        () -> prefillEngine.kvStats().usedBlocks() == 0);

    held.resume();
    assertEquals(expected(LONG_ANSWER, 40), text(await(held.events())));
    awaitEveryBlockFree(decodeEngine);
  }

  @Test
  void aRequestStillWaitingWhenItsKvLeaseIsAboutToRunOutFailsAsOverloadedBeforeItDoes()
      throws Exception {
    Engine shortLeaseEngine = engines.open(512);
    registry.removeIf(entry -> entry.get().role() == Role.PREFILL);
    registry.add(deployPrefill("p-short", shortLeaseEngine, 64, 2_500)::info);
    Routing routing = Routing.create(new RoutingOptions().setDecodeRankCap(1),
        new SimpleMeterRegistry());
    BackendVerticle loop = eventLoop(routing);
    Started held = holdASlot(loop, routing, "held");

    Exception e = assertThrows(Exception.class, () -> await(run(loop, new CompletionJob(
        "waiting", MODEL, "Hello world", greedy(20)))));
    long failedAtMillis = System.currentTimeMillis();
    assertEquals(Failure.OVERLOADED, failureOf(e));
    assertTrue(e.getCause().getMessage().contains("KV lease"), e.getCause().getMessage());
    PrefillResult waited = prefilled.stream()
        .filter(result -> result.requestId().equals("waiting")).findFirst().orElseThrow();
    assertTrue(failedAtMillis < waited.kv().leaseExpiresAtMillis(),
        "it failed before its lease ran out");
    assertEquals(0, routing.waiting());

    held.resume();
    assertEquals(expected(LONG_ANSWER, 40), text(await(held.events())));
    eventually("every KV block is free", Duration.ofSeconds(5),
        () -> shortLeaseEngine.kvStats().usedBlocks() == 0
            && decodeEngine.kvStats().usedBlocks() == 0);
  }

  @Test
  void roundRobinTakesThePrefillInstancesInTurn() throws Exception {
    registry.add(1, deployPrefill("p1", engines.open(512))::info);
    BackendVerticle loop = eventLoop(Routing.create(new RoutingOptions()
        .setPrefillPolicy(RoundRobinPolicy.NAME), new SimpleMeterRegistry()));
    for (int i = 0; i < 6; i++) {
      String prompt = PROMPTS.get(i);
      assertEquals(expected(prompt, 20), text(await(run(loop, new CompletionJob("rr-" + i,
          MODEL, prompt, greedy(20))))), prompt);
    }
    String p0 = Addresses.prefill("p0");
    String p1 = Addresses.prefill("p1");
    assertEquals(List.of(p0, p1, p0, p1, p0, p1), sentInOrder.stream()
        .filter(address -> address.equals(p0) || address.equals(p1)).toList());
  }

  @Test
  void prefixAffinitySendsPromptsThatBeginAlikeToOnePrefillInstanceWhosePrefixCacheHits()
      throws Exception {
    registry.add(1, deployPrefill("p1", engines.open(512))::info);
    SimpleMeterRegistry metrics = new SimpleMeterRegistry();
    // A key of 16 tokens: the first 64 characters, one KV block's worth.
    BackendVerticle loop = eventLoop(Routing.create(new RoutingOptions()
        .setPrefillPolicy(PrefixAffinityPolicy.NAME)
        .setPrefillPolicyParams(new JsonObject().put("prefix-tokens", 16)), metrics));
    String prefix = "Once upon a time, in a quiet lab full of humming machines, a small robot";
    List<String> endings = List.of(" woke up.", " had a dream.", " sang a song.", " met a cat.");
    for (String ending : endings) {
      String prompt = prefix + ending;
      assertEquals(expected(prompt, 20), text(await(run(loop, new CompletionJob(
          "affine" + ending, MODEL, prompt, greedy(20))))), prompt);
    }
    int toP0 = sentTo(Addresses.prefill("p0"));
    int toP1 = sentTo(Addresses.prefill("p1"));
    assertEquals(Set.of(0, endings.size()), Set.of(toP0, toP1), "p0: " + toP0 + ", p1: " + toP1);
    assertEquals(endings.size(), metrics.get("duet.routing.affinity").tag("outcome", "hit")
        .counter().count());
    assertEquals(endings.size(), prefilled.size());
    for (PrefillResult result : prefilled.subList(1, endings.size())) {
      assertTrue(result.cachedPromptTokens() >= 16, result.requestId() + " found "
          + result.cachedPromptTokens() + " prompt tokens in the prefix cache");
    }
  }

  @Test
  void aCapRaisedByAdminReloadTakesEffectWithoutFailingARequestAndAnInvalidReloadChangesNothing(
      @TempDir Path dir) throws Exception {
    Path file = dir.resolve("proxy.yaml");
    String yaml = "instance:\n  id: proxy-reload\nproxy:\n  host: " + HOST + "\n  port: 0\n"
        + "  http-instances: 2\n  decode-rank-cap: %d\n";
    Files.writeString(file, yaml.formatted(1));
    ConfigFlags flags = ConfigFlags.parse("--config", file.toString());
    Supplier<Future<DuetConfig>> loader = () -> ConfigLoader.load(vertx, flags, Map.of());
    DuetConfig started = await(loader.get());
    PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    Routing routing = ProxyMain.routing(started, metrics);
    ProxyVerticle proxy = ProxyMain.proxy(vertx, started, this::instances, routing, metrics,
        ProxyMain.reload(vertx, loader, started, routing, this::instances, metrics));
    await(vertx.deployVerticle(proxy));

    // With a cap of 1 and the slot held, every request waits.
    Started held = holdASlot(eventLoop(routing), routing, "held");
    List<Future<String>> texts = streams(proxy);
    eventually("every request waits for the held slot", Duration.ofSeconds(10),
        () -> routing.waiting() == PROMPTS.size());

    Files.writeString(file, yaml.formatted(4));
    assertEquals(new JsonObject().put("status", "applied").put("changes", new JsonArray()
            .add(new JsonObject().put("key", "proxy.decode-rank-cap").put("old", "1")
                .put("new", "4"))).put("restartRequired", new JsonArray()),
        reload(proxy, 200));
    // They run on the 3 slots the reload opened: the held request still has the fourth.
    await(Future.all(texts));
    for (int i = 0; i < PROMPTS.size(); i++) {
      assertEquals(expected(PROMPTS.get(i), 30), texts.get(i).result(), PROMPTS.get(i));
    }

    Files.writeString(file, yaml.formatted(0));
    assertEquals(new JsonArray().add("proxy.decode-rank-cap: expected an integer >= 1, found "
        + "'0' (file: " + file.toAbsolutePath() + ")"), reload(proxy, 400).getJsonArray("errors"));
    Files.writeString(file, yaml.formatted(4) + "  decode-policy: random\n");
    assertEquals(new JsonArray().add("unknown decode routing policy 'random'; known decode "
        + "policies: least-load, longest-first, test-pinned"),
        reload(proxy, 400).getJsonArray("errors"));
    Files.writeString(file, yaml.formatted(4));
    assertEquals(new JsonArray(), reload(proxy, 200).getJsonArray("changes"),
        "the refused reloads changed nothing");
    assertEquals(2, metrics.get("duet.config.reloads").tag("outcome", "refused").counter()
        .count());

    held.resume();
    assertEquals(expected(LONG_ANSWER, 40), text(await(held.events())));
    awaitEveryBlockFree(decodeEngine);
  }

  /** {@code POST /admin/reload}: its body, once its status is checked. */
  private JsonObject reload(ProxyVerticle proxy, int status) throws Exception {
    Answer answer = await(post(proxy, "/admin/reload", new JsonObject()));
    assertEquals(status, answer.status(), answer.body().toString());
    return answer.body().toJsonObject();
  }

  @ParameterizedTest
  @EnumSource(Refusal.class)
  void aPrefillInstanceThatDoesNotTakeTheRequestIsReplaced(Refusal refusal) throws Exception {
    // Equally idle instances go in registry order, so the refusing one is asked first.
    registry.add(0, refusingPrefill(refusal, "p-refusing"));
    String prompt = "Once upon a time";
    List<DecodeEvent> events = await(run(new CompletionJob("r1", MODEL, prompt, greedy(30))));

    assertEquals(expected(prompt, 30), text(events));
    assertEquals(1, sentTo(Addresses.prefill("p-refusing")), "the refusing instance was asked");
    assertEquals(1, sentTo(Addresses.prefill("p0")));
    awaitEveryBlockFree(decodeEngine);
  }

  /**
   * The prefill instance dies after it answered, before the decode instance pulled the KV: the
   * decode instance reports it unreachable, and the prompt is prefilled again on another
   * instance. The client sees the text it would have seen, and nothing of the first attempt
   * stays held.
   */
  @Test
  void aPrefillInstanceLostBeforeItsKvWasPulledIsReplacedByPrefillingAgain() throws Exception {
    Engine lostEngine = engines.open(512);
    PrefillVerticle lost = deployPrefill("p-lost", lostEngine);
    registry.add(0, lost::info); // asked first
    losePrefillInstancesBeforeThePull(new ConcurrentHashMap<>(Map.of("p-lost", lost)));

    String prompt = "Once upon a time";
    List<DecodeEvent> events = await(run(new CompletionJob("r1", MODEL, prompt, greedy(30))));

    assertEquals(expected(prompt, 30), text(events));
    assertEquals(1, sentTo(Addresses.prefill("p-lost")));
    assertEquals(1, sentTo(Addresses.prefill("p0")), "prefilled again on p0");
    assertEquals(2, sentTo(Addresses.decode("d0", 0)), "the same decode instance, asked again");
    assertEquals(0, lostEngine.kvStats().usedBlocks(), "the lost instance freed its lease");
    awaitEveryBlockFree(decodeEngine);
  }

  @Test
  void aRequestIsPrefilledAgainAtMostOnce() throws Exception {
    PrefillVerticle first = deployPrefill("p-lost", engines.open(512));
    registry.add(0, first::info);
    losePrefillInstancesBeforeThePull(new ConcurrentHashMap<>(Map.of("p-lost", first,
        "p0", prefill)));

    Exception e = assertThrows(Exception.class, () -> await(run(new CompletionJob("r1", MODEL,
        "Once upon a time", greedy(30)))));
    CompletionException failure = assertInstanceOf(CompletionException.class, e.getCause());
    assertEquals(Failure.KV_UNREACHABLE, failure.failure());
    assertEquals(1, sentTo(Addresses.prefill("p-lost")));
    assertEquals(1, sentTo(Addresses.prefill("p0")), "one prefill again, no more");
    awaitEveryBlockFree(decodeEngine);
  }

  /**
   * The prefill instance took the request and leaves the registry before it answers (it died,
   * or is cut off): the request does not wait for its deadline, it is prefilled elsewhere.
   */
  @Test
  void aPrefillInstanceThatLeavesBeforeAnsweringIsReplacedByPrefillingAgain() throws Exception {
    Promise<Void> asked = Promise.promise();
    // it takes the request and never answers
    await(vertx.eventBus().<JsonObject>consumer(Addresses.prefill("p-silent"),
        message -> asked.tryComplete()).completion());
    registry.add(0, listedPrefill("p-silent"));
    String prompt = "Once upon a time";
    Future<List<DecodeEvent>> events = run(new CompletionJob("r1", MODEL, prompt, greedy(30)));

    await(asked.future());
    registry.remove(0); // it left the cluster
    assertEquals(expected(prompt, 30), text(await(events)));
    assertEquals(1, sentTo(Addresses.prefill("p0")));
    awaitEveryBlockFree(decodeEngine);
  }
}
