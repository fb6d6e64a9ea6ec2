package io.duet.bench.impl;

import io.vertx.core.json.JsonObject;
import java.util.concurrent.TimeUnit;
import org.HdrHistogram.Histogram;

/**
 * A latency distribution recorded in nanoseconds with HdrHistogram (3 significant digits, up
 * to ten minutes), read out in milliseconds or microseconds.
 */
public final class Latency {

  private static final long HIGHEST = TimeUnit.MINUTES.toNanos(10);

  private final Histogram histogram = new Histogram(HIGHEST, 3);

  public void recordNanos(long nanos) {
    histogram.recordValue(Math.max(0, Math.min(nanos, HIGHEST)));
  }

  public void recordNanos(double nanos) {
    recordNanos(Math.round(nanos));
  }

  /** Adds the values {@code other} recorded. */
  public void add(Latency other) {
    histogram.add(other.histogram);
  }

  public long count() {
    return histogram.getTotalCount();
  }

  /** The mean, in units of {@code unitNanos} nanoseconds. */
  public double mean(double unitNanos) {
    return histogram.getMean() / unitNanos;
  }

  /** The {@code percentile} (0-100), in units of {@code unitNanos} nanoseconds. */
  public double percentile(double percentile, double unitNanos) {
    return histogram.getValueAtPercentile(percentile) / unitNanos;
  }

  public double max(double unitNanos) {
    return histogram.getMaxValue() / unitNanos;
  }

  /** count, mean, p50, p90, p99 and max in the given unit. */
  public JsonObject toJson(double unitNanos) {
    return new JsonObject().put("count", count()).put("mean", mean(unitNanos))
        .put("p50", percentile(50, unitNanos)).put("p90", percentile(90, unitNanos))
        .put("p99", percentile(99, unitNanos)).put("max", max(unitNanos));
  }
}
