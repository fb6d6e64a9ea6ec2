package io.duet.proxy;

import io.duet.proxy.impl.OpenAiApiImpl;
import io.duet.proxy.impl.ProxyMetrics;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.ext.web.Router;

/**
 * The OpenAI-compatible HTTP API in front of a {@link CompletionBackend}:
 * <ul>
 *   <li>{@code POST /v1/completions} and {@code POST /v1/chat/completions}, whole or streamed as
 *   server-sent events ({@code stream_options: {include_usage, continuous_usage_stats}});</li>
 *   <li>{@code GET /v1/models} and {@code GET /v1/models/{model}};</li>
 *   <li>{@code GET /health}: 200 {@code {"status":"ok","models":{NAME:OWNER}}} while at least
 *   one model is served (the owner {@code duet-sim} when the simulated engine serves it), else
 *   503 with the reason;</li>
 *   <li>{@code GET /metrics}: the Prometheus registry's scrape.</li>
 * </ul>
 * With an API key set in the options, {@code /v1/*} requires {@code Authorization: Bearer <key>}.
 * Errors use OpenAI's body {@code {"error":{"message","type","param","code"}}}.
 */
public interface OpenAiApi {

  /**
   * The API: its options and its metrics ({@code duet_requests_total}, {@code duet_ttft_seconds},
   * {@code duet_tpot_seconds}, {@code duet_e2e_seconds}, {@code duet_requests_in_flight}), which
   * go to {@code registry}; {@code /metrics} also serves it.
   *
   * @throws IllegalArgumentException if the options name an unknown chat template
   */
  static OpenAiApi create(Vertx vertx, ProxyOptions options, PrometheusMeterRegistry registry) {
    return new OpenAiApiImpl(vertx, new ProxyOptions(options), registry,
        new ProxyMetrics(registry), null);
  }

  /**
   * A router serving the API over {@code backend}; mount it on an HTTP server or into another
   * router. A proxy with several event loops gives each one's server a router and a backend of
   * its own: the routers of one API count in its one set of metrics, which any thread may update.
   */
  Router router(CompletionBackend backend);

  /**
   * Answers a request the HTTP server could not decode (a request line or headers over the
   * server's limits: 414, 431; else 400) with the API's error body; set it as the server's
   * {@link io.vertx.core.http.HttpServer#invalidRequestHandler}.
   */
  void invalidRequest(HttpServerRequest request);
}
