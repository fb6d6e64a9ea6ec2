package io.duet.proxy;

import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves {@link OpenAiApi} over HTTP on {@link ProxyOptions#getHost()}:{@link
 * ProxyOptions#getPort()}. Deployment completes once the server listens; undeployment closes it.
 * Deploy one instance per backend.
 */
public class ProxyVerticle extends AbstractVerticle {

  private static final Logger LOG = LoggerFactory.getLogger(ProxyVerticle.class);

  private final CompletionBackend backend;
  private final ProxyOptions options;
  private final PrometheusMeterRegistry registry;
  private HttpServer server;
  private volatile int actualPort = -1;

  /** A proxy with its own Prometheus registry. */
  public ProxyVerticle(CompletionBackend backend, ProxyOptions options) {
    this(backend, options, new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
  }

  public ProxyVerticle(CompletionBackend backend, ProxyOptions options,
      PrometheusMeterRegistry registry) {
    this.backend = Objects.requireNonNull(backend, "backend");
    this.options = new ProxyOptions(Objects.requireNonNull(options, "options"));
    this.registry = Objects.requireNonNull(registry, "registry");
  }

  @Override
  public void start(Promise<Void> startPromise) {
    OpenAiApi api = OpenAiApi.create(vertx, backend, options, registry);
    backend.open()
        .compose(v -> vertx.createHttpServer(new HttpServerOptions().setHost(options.getHost())
            .setPort(options.getPort()))
        .requestHandler(api.router())
        .listen())
        .onSuccess(listening -> {
          server = listening;
          actualPort = listening.actualPort();
          LOG.info("OpenAI API listening on {}:{} (chat template {}, API key {})",
              options.getHost(), actualPort, options.getChatTemplate(),
              options.getApiKey() == null ? "off" : "required");
        })
        .<Void>mapEmpty()
        .onComplete(startPromise);
  }

  @Override
  public void stop(Promise<Void> stopPromise) {
    Future<Void> closed = server == null ? Future.succeededFuture() : server.close();
    closed.eventually(() -> backend.close()).onComplete(stopPromise);
  }

  /** The port the server listens on (the chosen one when the options asked for 0), -1 before. */
  public int actualPort() {
    return actualPort;
  }

  /** The registry the metrics go to and {@code /metrics} serves. */
  public PrometheusMeterRegistry registry() {
    return registry;
  }
}
