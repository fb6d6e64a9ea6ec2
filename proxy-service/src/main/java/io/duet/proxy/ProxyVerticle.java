package io.duet.proxy;

import io.duet.contract.Addresses;
import io.duet.contract.InstanceInfo;
import io.duet.proxy.impl.EventBusCompletions;
import io.duet.proxy.impl.IdleConnections;
import io.duet.proxy.impl.OpenAiApiImpl;
import io.duet.proxy.impl.ProxyMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.DeploymentOptions;
import io.vertx.core.Future;
import io.vertx.core.Handler;
import io.vertx.core.Promise;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpConnection;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.shareddata.Counter;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves {@link OpenAiApi} over HTTP on {@link ProxyOptions#getHost()}:{@link
 * ProxyOptions#getPort()} with {@link ProxyOptions#getInstances()} HTTP servers, each deployed
 * as a verticle instance on an event loop of its own, so that one busy event loop does not hold
 * up every stream. The servers share the port (Vert.x hands new connections to them in turn), one
 * {@link OpenAiApi} and its metrics; each has a backend of its own from the supplier, opened on
 * its event loop. Each event loop also serves completions to event-bus clients
 * ({@link Addresses#COMPLETIONS}) over its backend, with its own control address
 * ({@link Addresses#proxyControl}, numbered from 0 under {@link ProxyOptions#getInstanceId()}),
 * counted in the same metrics. Deployment completes once every server listens.
 *
 * <p>Undeployment drains (SIGTERM undeploys, see {@code ClusterBootstrap.closeOnSignal}): the
 * proxy {@linkplain InstanceInfo.State#DRAINING announces that it is draining}, closes its
 * listening socket (new connections are refused, which a load balancer takes as a sign to use
 * another proxy) and stops taking event-bus completions; each HTTP connection is closed as soon
 * as its response has ended, and the open streams run to their end, for up to
 * {@link ProxyOptions#getDrainTimeoutMillis()}. Then what still runs is cut, the backends close
 * and the proxy {@linkplain InstanceInfo.State#LEFT announces that it left}.
 */
public class ProxyVerticle extends AbstractVerticle {

  private static final Logger LOG = LoggerFactory.getLogger(ProxyVerticle.class);
  /** Vert.x-wide counter numbering the random ports of the proxies of one Vert.x instance. */
  private static final String RANDOM_PORTS_COUNTER = "io.duet.proxy.random-ports";

  private final Supplier<? extends CompletionBackend> backends;
  private final ProxyOptions options;
  private final PrometheusMeterRegistry registry;
  private final String instanceId;
  private final ConfigReload reload;
  /** Numbers the event loops' control addresses. */
  private final AtomicInteger eventLoops = new AtomicInteger();
  /** Open HTTP connections over every HTTP server of this proxy, against the cap. */
  private final AtomicInteger connections = new AtomicInteger();
  private volatile int actualPort = -1;
  private volatile InstanceInfo.State state = InstanceInfo.State.SERVING;
  private volatile Consumer<InstanceInfo.State> stateListener = changed -> { };

  /** A proxy with its own Prometheus registry and no {@code /admin/reload}. */
  public ProxyVerticle(Supplier<? extends CompletionBackend> backends, ProxyOptions options) {
    this(backends, options, new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
  }

  /** A proxy without {@code /admin/reload}. */
  public ProxyVerticle(Supplier<? extends CompletionBackend> backends, ProxyOptions options,
      PrometheusMeterRegistry registry) {
    this(backends, options, registry, null);
  }

  /**
   * @param backends called once per HTTP server: a backend confined to one event loop (such as
   *     {@code ClusterBackend}) must come new from each call; one backend may serve them all
   *     only if it is safe to call from several event loops
   * @param reload what {@code POST /admin/reload} runs; null for no such endpoint
   */
  public ProxyVerticle(Supplier<? extends CompletionBackend> backends, ProxyOptions options,
      PrometheusMeterRegistry registry, ConfigReload reload) {
    this.backends = Objects.requireNonNull(backends, "backends");
    this.options = new ProxyOptions(Objects.requireNonNull(options, "options"));
    this.registry = Objects.requireNonNull(registry, "registry");
    this.reload = reload;
    this.instanceId = options.getInstanceId() != null ? options.getInstanceId()
        : "proxy-" + UUID.randomUUID();
  }

  @Override
  public void start(Promise<Void> startPromise) {
    ProxyMetrics metrics = new ProxyMetrics(registry);
    OpenAiApi api = new OpenAiApiImpl(vertx, options, registry, metrics, reload);
    // The servers are child deployments: undeploying this verticle undeploys them first, and
    // when one of them fails to start, Vert.x stops those that had started.
    listenPort()
        .compose(port -> vertx.deployVerticle(() -> new Server(api, metrics, port),
            new DeploymentOptions().setInstances(options.getInstances())))
        .onSuccess(deployed -> LOG.info("OpenAI API listening on {}:{} with {} HTTP servers, "
                + "event-bus completions on {} (chat template {}, API key {})", options.getHost(),
            actualPort, options.getInstances(), Addresses.COMPLETIONS, options.getChatTemplate(),
            options.getApiKey() == null ? "off" : "required"))
        .<Void>mapEmpty()
        .onComplete(startPromise);
  }

  /**
   * The port the servers listen on. Vert.x lets the servers of one Vert.x instance share a port
   * they all name, except port 0: each server asking for it would get a random port of its own.
   * A negative port is Vert.x's way to ask for one random port shared by every server that names
   * the same negative number; a Vert.x-wide counter numbers it, so that two proxies in one Vert.x
   * instance never end up on each other's port.
   */
  private Future<Integer> listenPort() {
    if (options.getPort() != 0) {
      return Future.succeededFuture(options.getPort());
    }
    return vertx.sharedData().getLocalCounter(RANDOM_PORTS_COUNTER)
        .compose(Counter::incrementAndGet)
        .map(n -> Math.toIntExact(-n));
  }

  /** The port the servers listen on (the chosen one when the options asked for 0), -1 before. */
  public int actualPort() {
    return actualPort;
  }

  /** Serving until undeployed; draining while it finishes its streams; left once stopped. */
  public InstanceInfo.State state() {
    return state;
  }

  /**
   * Calls {@code listener} with each state the proxy enters after serving (draining, then left),
   * on an event loop, so that it can announce them (a heartbeat). Set it before undeploying.
   */
  public ProxyVerticle onStateChange(Consumer<InstanceInfo.State> listener) {
    this.stateListener = Objects.requireNonNull(listener, "listener");
    return this;
  }

  /** Enters {@code next} unless the proxy is there already (each server's stop asks for it). */
  private synchronized void enter(InstanceInfo.State next) {
    if (state.compareTo(next) < 0) {
      state = next;
      LOG.info("Proxy {} {}", instanceId, next == InstanceInfo.State.DRAINING
          ? "draining for at most " + options.getDrainTimeoutMillis() + " ms: refusing new "
              + "connections, finishing its open streams" : "stopped its HTTP servers");
      stateListener.accept(next);
    }
  }

  /** Runs once the servers, child deployments, have drained and stopped. */
  @Override
  public void stop() {
    enter(InstanceInfo.State.LEFT);
  }

  /** The registry the metrics go to and {@code /metrics} serves. */
  public PrometheusMeterRegistry registry() {
    return registry;
  }

  /**
   * One HTTP server, the event-bus completions and their backend, on the event loop of the
   * verticle instance's context.
   */
  private final class Server extends AbstractVerticle {

    private final OpenAiApi api;
    private final ProxyMetrics metrics;
    private final int port;
    private final CompletionBackend backend = backends.get();
    private EventBusCompletions eventBus;
    private HttpServer server;
    private IdleConnections idle;

    Server(OpenAiApi api, ProxyMetrics metrics, int port) {
      this.api = api;
      this.metrics = metrics;
      this.port = port;
    }

    @Override
    public void start(Promise<Void> startPromise) {
      eventBus = new EventBusCompletions(vertx, options, metrics, backend,
          Addresses.proxyControl(instanceId, eventLoops.getAndIncrement()));
      idle = new IdleConnections(vertx, options.getIdleTimeoutSeconds());
      backend.open()
          .compose(v -> eventBus.open())
          .compose(v -> vertx.createHttpServer(new HttpServerOptions().setHost(options.getHost())
                  .setPort(port).setHttp2ClearTextEnabled(options.isH2cUpgrade()))
              .connectionHandler(this::accept)
              .requestHandler(requests(api.router(backend)))
              .invalidRequestHandler(api::invalidRequest)
              .listen())
          .onSuccess(listening -> {
            server = listening;
            actualPort = listening.actualPort();
          })
          // Vert.x never stops an instance whose start failed: free the backend here.
          .onFailure(e -> eventBus.close().eventually(backend::close))
          .<Void>mapEmpty()
          .onComplete(startPromise);
    }

    /** Closes a connection over the cap at once; counts the others while they are open. */
    private void accept(HttpConnection connection) {
      if (connections.incrementAndGet() > options.getMaxConnections()) {
        connections.decrementAndGet();
        metrics.connectionRefused();
        connection.close();
        return;
      }
      idle.opened(connection);
      connection.closeHandler(v -> {
        connections.decrementAndGet();
        idle.closed(connection);
      });
    }

    /** Hands each request to {@code router}, its connection busy until it is answered. */
    private Handler<HttpServerRequest> requests(Handler<HttpServerRequest> router) {
      return request -> {
        idle.requestStarted(request);
        router.handle(request);
      };
    }

    @Override
    public void stop(Promise<Void> stopPromise) {
      enter(InstanceInfo.State.DRAINING);
      long drainMillis = options.getDrainTimeoutMillis();
      long start = System.nanoTime();
      // Vert.x's shutdown closes the listening socket first, then each connection once its
      // response has ended, and every connection left when the time is up.
      Future.join(server.shutdown(drainMillis, TimeUnit.MILLISECONDS),
              eventBus.drain(drainMillis))
          .onComplete(drained -> LOG.info("HTTP server of proxy {} drained in {} ms", instanceId,
              (System.nanoTime() - start) / 1_000_000))
          .eventually(eventBus::close).eventually(backend::close)
          .<Void>mapEmpty().onComplete(stopPromise);
    }
  }
}
