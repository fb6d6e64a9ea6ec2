package io.duet.cluster;

import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;

/**
 * Prometheus metrics of one instance (Micrometer 1.15, {@code io.micrometer.prometheusmetrics}).
 * Services serve {@link #scrape} at {@code GET /metrics} with {@link #CONTENT_TYPE}.
 */
public final class Metrics {

  /** Content type of the Prometheus text exposition format 0.0.4 that {@link #scrape} returns. */
  public static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

  /** Common tag naming the role ({@code proxy}, {@code prefill}, {@code decode}). */
  public static final String TAG_ROLE = "role";
  /** Common tag naming the instance id. */
  public static final String TAG_INSTANCE = "instance";
  /** Common tag naming the data-parallel rank, on the meters of a decode rank. */
  public static final String TAG_RANK = "rank";

  private Metrics() {
  }

  /** A registry whose every meter carries the tags {@code role} and {@code instance}. */
  public static PrometheusMeterRegistry createRegistry(String role, String instanceId) {
    PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    registry.config().commonTags(TAG_ROLE, role, TAG_INSTANCE, instanceId);
    return registry;
  }

  /** The text exposition of every meter in {@code registry}. */
  public static String scrape(PrometheusMeterRegistry registry) {
    return registry.scrape();
  }
}
