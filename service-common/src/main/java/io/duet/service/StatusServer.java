package io.duet.service;

import io.duet.contract.InstanceInfo;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonObject;
import java.util.function.Supplier;

/**
 * The small HTTP endpoint every prefill and decode instance has: {@code GET /health} (its
 * status as JSON) and {@code GET /metrics} (Prometheus text).
 */
public final class StatusServer {

  private final String host;
  private final int port;
  private final PrometheusMeterRegistry registry;
  private HttpServer server;

  /** @param port 0 for any free port */
  public StatusServer(String host, int port, PrometheusMeterRegistry registry) {
    this.host = host;
    this.port = port;
    this.registry = registry;
  }

  /** @param instance this instance's current info, reported by {@code /health} */
  public Future<HttpServer> start(Vertx vertx, Supplier<InstanceInfo> instance) {
    return vertx.createHttpServer().requestHandler(request -> {
      switch (request.path()) {
        case "/health" -> request.response().putHeader("content-type", "application/json")
            .end(new JsonObject().put("status", "ok").put("instance", instance.get().toJson())
                .encode());
        case "/metrics" -> request.response()
            .putHeader("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .end(registry.scrape());
        default -> request.response().setStatusCode(404).end();
      }
    }).listen(port, host).onSuccess(listening -> server = listening);
  }

  /** The meters {@code /metrics} serves. */
  public PrometheusMeterRegistry registry() {
    return registry;
  }

  /** The port it listens on; 0 until it does. */
  public int actualPort() {
    return server == null ? 0 : server.actualPort();
  }

  public Future<Void> close() {
    return server == null ? Future.succeededFuture() : server.close();
  }
}
