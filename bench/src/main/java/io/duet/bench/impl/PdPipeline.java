package io.duet.bench.impl;

import io.duet.cluster.ConfigFlags;
import io.duet.cluster.ConfigLoader;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.DecodeEvent;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.contract.SamplingSpec;
import io.duet.decode.DecodeOptions;
import io.duet.decode.DecodeVerticle;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.prefill.PrefillOptions;
import io.duet.prefill.PrefillVerticle;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.ConfigReload;
import io.duet.proxy.ProxyMain;
import io.duet.proxy.ProxyVerticle;
import io.duet.proxy.cluster.ClusterBackend;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingOptions;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.duet.proxy.routing.Routing;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntConsumer;
import java.util.function.Supplier;

/**
 * An embedded 1P1D on a local (non-clustered) Vert.x, as the proxy's pipeline test runs it:
 * the real prefill and decode verticles, each with its own engine, KV moved over a real
 * loopback TCP connection or by the same-JVM handoff, driven through the proxy's
 * {@link ClusterBackend} on one context. Instance settings, and the Vert.x's event loops, are
 * the built-in defaults of the configuration ({@link Settings}), with {@code max-num-seqs}
 * raised to the benchmark's concurrency if needed. The proxy sees the instances as a registry
 * does: what they announced at the last heartbeat.
 */
public final class PdPipeline implements AutoCloseable {

  public static final String MODEL = "bench";
  private static final long TIMEOUT_MILLIS = 600_000;

  private final Vertx vertx;
  private final Engine prefillEngine;
  private final Engine decodeEngine;
  private final Supplier<List<InstanceInfo>> registry;
  private final ClusterBackend backend;
  private final Context context;

  private PdPipeline(Vertx vertx, Engine prefillEngine, Engine decodeEngine,
      Supplier<List<InstanceInfo>> registry, ClusterBackend backend, Context context) {
    this.vertx = vertx;
    this.prefillEngine = prefillEngine;
    this.decodeEngine = decodeEngine;
    this.registry = registry;
    this.backend = backend;
    this.context = context;
  }

  /**
   * Opens two engines with {@code options} and starts P, D and the backend.
   *
   * @param kvLayerStreaming whether the KV moves layer by layer while prefill runs
   *     ({@code proxy.kv-layer-streaming}), else once it has ended
   * @param sameJvmHandoff whether the decode verticle copies the KV from the prefill engine's
   *     cache ({@code kv-transfer.same-jvm-handoff}), else pulls it over loopback TCP
   */
  public static PdPipeline start(EngineOptions options, int maxNumSeqs, boolean kvLayerStreaming,
      boolean sameJvmHandoff) throws Exception {
    Engine prefillEngine = Engine.open(options);
    Engine decodeEngine = Engine.open(options);
    DuetConfig defaults = DuetConfig.defaults()
        .with(Settings.KV_TRANSFER_SAME_JVM_HANDOFF, sameJvmHandoff);
    Vertx vertx = Vertx.vertx(new VertxOptions()
        .setEventLoopPoolSize(defaults.get(Settings.INSTANCE_EVENT_LOOPS)));
    try {
      PrefillVerticle prefill = new PrefillVerticle(prefillEngine,
          PrefillOptions.from(defaults.with(Settings.INSTANCE_ID, "bench-p0"), MODEL),
          new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
      DecodeVerticle decode = new DecodeVerticle(decodeEngine,
          DecodeOptions.from(defaults.with(Settings.INSTANCE_ID, "bench-d0")
              .with(Settings.DECODE_MAX_NUM_SEQS,
                  Math.max(maxNumSeqs, defaults.get(Settings.DECODE_MAX_NUM_SEQS))),
              MODEL, 0),
          new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
      Futures.await(vertx.deployVerticle(prefill).compose(id -> vertx.deployVerticle(decode)), 60);
      // What the proxy's registry holds: the instances' announcements, one per heartbeat
      // period. Asking the verticles at every look would put the making of their info (some
      // 50-100 us a look on 2 loaded cores) on the request's path, where a registry has none.
      Supplier<List<InstanceInfo>> live = () -> List.of(prefill.info(), decode.info());
      AtomicReference<List<InstanceInfo>> announced = new AtomicReference<>(live.get());
      vertx.setPeriodic(defaults.get(Settings.CLUSTER_HEARTBEAT_MILLIS),
          id -> announced.set(live.get()));
      Supplier<List<InstanceInfo>> registry = announced::get;
      ClusterBackend backend = ClusterBackend.perEventLoop(vertx, registry, "bench-proxy",
          Routing.create(new RoutingOptions(), new SimpleMeterRegistry()),
          defaults.get(Settings.PROXY_STREAM_CREDITS), TIMEOUT_MILLIS, List.of(),
          defaults.get(Settings.PROXY_FIRST_TOKEN_FROM_PREFILL), kvLayerStreaming).get();
      // The backend is confined to one context, as it is inside the proxy verticle.
      Context context = vertx.getOrCreateContext();
      Promise<Void> opened = Promise.promise();
      context.runOnContext(v -> backend.open().onComplete(opened));
      Futures.await(opened.future(), 60);
      return new PdPipeline(vertx, prefillEngine, decodeEngine, registry, backend, context);
    } catch (Exception e) {
      vertx.close();
      prefillEngine.close();
      decodeEngine.close();
      throw e;
    }
  }

  /**
   * Puts the proxy's OpenAI API in front of this 1P1D as the proxy's main makes it, from the
   * proxy settings of {@code configFile} (port, HTTP servers, routing policies), with
   * {@code POST /admin/reload} re-reading that file; completes with the port it listens on.
   * The served model is {@value #MODEL}.
   */
  public Future<Integer> serveHttp(Path configFile) {
    ConfigFlags flags = ConfigFlags.parse("--config", configFile.toString());
    Supplier<Future<DuetConfig>> loader = () -> ConfigLoader.load(vertx, Role.PROXY, flags,
        Map.of());
    return loader.get().compose(config -> {
      PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
      Routing routing = ProxyMain.routing(config, metrics);
      ConfigReload reload = ProxyMain.reload(vertx, loader, config, routing, registry, metrics);
      ProxyVerticle proxy = ProxyMain.proxy(vertx, config, registry, routing, metrics, reload);
      return vertx.deployVerticle(proxy).map(id -> proxy.actualPort());
    });
  }

  public Engine prefillEngine() {
    return prefillEngine;
  }

  /**
   * Runs every prompt through the pipeline with at most {@code concurrency} requests in flight
   * (the next starts when one ends); results in prompt order. A request's clock starts when it
   * is handed to the backend; each decode event is timed as the backend delivers it.
   */
  public Future<List<RequestTiming>> run(String idPrefix, List<String> prompts, SamplingSpec sampling,
      int concurrency, IntConsumer onFinished) {
    Promise<List<RequestTiming>> done = Promise.promise();
    context.runOnContext(v -> new Driver(idPrefix, prompts, sampling, concurrency, onFinished,
        done).startMore());
    return done.future();
  }

  /** Keeps {@code concurrency} jobs in flight on the backend's context. */
  private final class Driver {
    final String idPrefix;
    final List<String> prompts;
    final SamplingSpec sampling;
    final int concurrency;
    final IntConsumer onFinished;
    final Promise<List<RequestTiming>> done;
    final RequestTiming[] timings;
    int next;
    int inFlight;
    int finished;

    Driver(String idPrefix, List<String> prompts, SamplingSpec sampling, int concurrency,
        IntConsumer onFinished, Promise<List<RequestTiming>> done) {
      this.idPrefix = idPrefix;
      this.prompts = prompts;
      this.sampling = sampling;
      this.concurrency = concurrency;
      this.onFinished = onFinished;
      this.done = done;
      this.timings = new RequestTiming[prompts.size()];
    }

    void startMore() {
      while (inFlight < concurrency && next < prompts.size() && !done.future().isComplete()) {
        int index = next++;
        inFlight++;
        RequestTiming timing = new RequestTiming(System.nanoTime());
        timings[index] = timing;
        CompletionStream stream = backend.start(new CompletionJob(idPrefix + "-" + index, MODEL,
            prompts.get(index), sampling));
        stream.exceptionHandler(error -> done.tryFail(new IllegalStateException("request "
            + index + " failed: " + error.getMessage(), error)));
        stream.endHandler(x -> {
          timing.stages(stream.ttftStages());
          inFlight--;
          onFinished.accept(++finished);
          if (finished == prompts.size()) {
            done.tryComplete(Arrays.asList(timings));
          } else {
            startMore();
          }
        });
        stream.handler((DecodeEvent event) -> timing.event(System.nanoTime(), event.tokens()));
      }
    }
  }

  @Override
  public void close() throws Exception {
    Promise<Void> closed = Promise.promise();
    context.runOnContext(v -> backend.close().onComplete(closed));
    Futures.await(closed.future(), 30);
    Futures.await(vertx.close(), 30);
    prefillEngine.close();
    decodeEngine.close();
  }
}
