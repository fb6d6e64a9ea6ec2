package io.duet.proxy.cluster;

import static io.duet.service.ServiceTests.eventually;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.Addresses;
import io.duet.contract.DecodeAccepted;
import io.duet.contract.DecodeEvent;
import io.duet.contract.DecodeRequest;
import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.contract.SamplingSpec;
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
import io.duet.proxy.ProxyMain;
import io.duet.proxy.ProxyOptions;
import io.duet.proxy.ProxyVerticle;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingOptions;
import io.duet.proxy.testpolicy.PinnedDecodePolicy;
import io.duet.service.ServiceTests.Engines;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.PoolOptions;
import io.vertx.core.json.JsonObject;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

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
      delivery.next();
    });
    prefillEngine = engines.open(512);
    decodeEngine = engines.open(512);
    reference = engines.open(512);
    prefill = deployPrefill("p0", prefillEngine, 64);
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

  /** @param maxWaiting 0 for an instance that refuses every request as overloaded */
  private PrefillVerticle deployPrefill(String id, Engine engine, int maxWaiting)
      throws Exception {
    PrefillVerticle verticle = new PrefillVerticle(engine, new PrefillOptions(id, MODEL, HOST, 0,
        0, 512, maxWaiting, 30_000, 10_000), new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    await(vertx.deployVerticle(verticle));
    return verticle;
  }

  /** @param maxWaiting 0 for an instance that refuses every request as overloaded */
  private DecodeVerticle deployDecode(String id, Engine engine, int maxWaiting) throws Exception {
    DecodeVerticle verticle = new DecodeVerticle(engine, new DecodeOptions(id, MODEL, HOST,
        0, 0, 1, 8, maxWaiting, 10_000, 2), new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    await(vertx.deployVerticle(verticle));
    return verticle;
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
        System.currentTimeMillis());
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
        new InstanceInfo.Load(0, 0, 0, 0, 0), System.currentTimeMillis());
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
      return deployPrefill(id, engines.open(64), 0)::info;
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
    Promise<List<DecodeEvent>> done = Promise.promise();
    List<DecodeEvent> events = new ArrayList<>();
    on.onContext(() -> {
      CompletionStream stream = on.backend.start(job);
      stream.exceptionHandler(done::tryFail);
      stream.endHandler(x -> done.tryComplete(events));
      stream.handler(events::add);
    });
    return done.future();
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
    int[] tokens = reference.tokenizer().encode(prompt, true);
    return new OfflineGenerator(reference, 1).generate(tokens, SamplingParams.greedy(maxTokens)).text();
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

  @Test
  void textThroughPrefillAndDecodeEqualsTheEngineAlone() throws Exception {
    String prompt = "Once upon a time";
    List<DecodeEvent> events = await(run(new CompletionJob("r1", MODEL, prompt, greedy(50))));
    assertEquals(expected(prompt, 50), text(events));
    DecodeEvent last = events.get(events.size() - 1);
    assertTrue(last.finishReason() != null, "last event carries a finish reason");
    assertEquals(reference.tokenizer().encode(prompt, true).length, last.promptTokens());
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
    ProxyVerticle proxy = new ProxyVerticle(
        ClusterBackend.perEventLoop(vertx, this::instances, "proxy1",
            Routing.create(new RoutingOptions(), metrics), 4, 30_000),
        new ProxyOptions().setHost(HOST).setPort(0).setInstances(2), metrics);
    await(vertx.deployVerticle(proxy));
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
    if (http == null) {
      http = vertx.createHttpClient(new PoolOptions().setHttp1MaxSize(PROMPTS.size()));
    }
    List<Future<String>> texts = new ArrayList<>();
    for (String prompt : PROMPTS) {
      JsonObject body = new JsonObject().put("model", MODEL).put("prompt", prompt)
          .put("max_tokens", 30).put("temperature", 0).put("stream", true);
      texts.add(http.request(HttpMethod.POST, proxy.actualPort(), HOST, "/v1/completions")
          .compose(request -> request.putHeader("Content-Type", "application/json")
              .send(body.encode()))
          .compose(HttpClientResponse::body)
          .map(PipelineTest::streamedText));
    }
    await(Future.all(texts));
    for (int i = 0; i < PROMPTS.size(); i++) {
      assertEquals(expected(PROMPTS.get(i), 30), texts.get(i).result(), PROMPTS.get(i));
    }
  }

  /** A proxy made from {@code config} as ProxyMain makes it, in front of this test's registry. */
  private ProxyVerticle deployedProxy(DuetConfig config, PrometheusMeterRegistry metrics)
      throws Exception {
    ProxyVerticle proxy = ProxyMain.proxy(vertx, config, this::instances,
        ProxyMain.routing(config, metrics), metrics);
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

  @Test
  void theBackendsOfOneProxyCountEachOthersDecodeRequests() throws Exception {
    Engine d1Engine = engines.open(512);
    registry.add(deployDecode("d1", d1Engine, 64)::info);
    // The instances as a heartbeat showed them, idle: only the proxy's own counts of the
    // requests it sent tell d0 and d1 apart.
    List<InstanceInfo> heartbeats = instances();
    Supplier<ClusterBackend> backends =
        ClusterBackend.perEventLoop(vertx, () -> heartbeats, "proxy1",
            Routing.create(new RoutingOptions(), new SimpleMeterRegistry()), 4, 30_000);
    BackendVerticle first = open(backends.get());
    BackendVerticle second = open(backends.get());

    // The first backend's request goes to d0 and stays there: its stream is paused, so d0
    // gets no credit to send the last event.
    Promise<CompletionStream> held = Promise.promise();
    first.onContext(() -> {
      CompletionStream stream = first.backend.start(new CompletionJob("held", MODEL,
          "Once upon a time", greedy(40)));
      stream.pause();
      held.complete(stream);
    });
    eventually("the first request went to d0", Duration.ofSeconds(10),
        () -> sentTo(Addresses.decode("d0", 0)) == 1);

    String prompt = "Hello world";
    List<DecodeEvent> events = await(run(second, new CompletionJob("next", MODEL, prompt,
        greedy(20))));
    assertEquals(expected(prompt, 20), text(events));
    assertEquals(1, sentTo(Addresses.decode("d1", 0)), "the second backend counted d0's request");

    first.onContext(() -> held.future().result().cancel());
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
    PrefillVerticle lost = deployPrefill("p-lost", lostEngine, 64);
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
    PrefillVerticle first = deployPrefill("p-lost", engines.open(512), 64);
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
