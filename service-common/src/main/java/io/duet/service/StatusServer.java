package io.duet.service;

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

  private StatusServer() {
  }

  public static Future<HttpServer> start(Vertx vertx, String host, int port,
      PrometheusMeterRegistry registry, Supplier<JsonObject> health) {
    return vertx.createHttpServer().requestHandler(request -> {
      switch (request.path()) {
        case "/health" -> request.response().putHeader("content-type", "application/json")
            .end(health.get().encode());
        case "/metrics" -> request.response()
            .putHeader("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .end(registry.scrape());
        default -> request.response().setStatusCode(404).end();
      }
    }).listen(port, host);
  }
}
