package io.duet.bench.impl;

import io.vertx.core.json.JsonObject;
import java.util.List;

/**
 * TTFT, TPOT, ITL and E2E distributions of a set of requests, with the output throughput of
 * the run (tokens of every request over the wall time from the first start to the last token).
 */
public final class LatencySummary {

  public static final double MS = 1e6;

  public final Latency ttft = new Latency();
  public final Latency tpot = new Latency();
  public final Latency itl = new Latency();
  public final Latency e2e = new Latency();
  public final int requests;
  public final long outputTokens;
  public final int coalescedEvents;
  public final double wallSeconds;

  public LatencySummary(List<RequestTiming> timings, long runStartNanos) {
    long tokens = 0;
    int coalesced = 0;
    long end = runStartNanos;
    for (RequestTiming t : timings) {
      ttft.recordNanos(t.ttftNanos());
      double perToken = t.tpotNanos();
      if (!Double.isNaN(perToken)) {
        tpot.recordNanos(perToken);
      }
      t.recordGaps(itl);
      e2e.recordNanos(t.e2eNanos());
      tokens += t.tokens();
      coalesced += t.coalescedEvents();
      end = Math.max(end, t.lastEventNanos());
    }
    this.requests = timings.size();
    this.outputTokens = tokens;
    this.coalescedEvents = coalesced;
    this.wallSeconds = (end - runStartNanos) / 1e9;
  }

  public double throughput() {
    return outputTokens / wallSeconds;
  }

  public JsonObject toJson() {
    return new JsonObject().put("requests", requests).put("outputTokens", outputTokens)
        .put("wallSeconds", wallSeconds).put("outputTokensPerSecond", throughput())
        .put("coalescedEvents", coalescedEvents)
        .put("ttftMs", ttft.toJson(MS)).put("tpotMs", tpot.toJson(MS))
        .put("itlMs", itl.toJson(MS)).put("e2eMs", e2e.toJson(MS));
  }
}
