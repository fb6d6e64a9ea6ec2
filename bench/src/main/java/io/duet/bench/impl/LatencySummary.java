package io.duet.bench.impl;

import io.duet.proxy.PrefillTiming;
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
  /** TTFT split by the prefill instance's own timing (requests that report one). */
  public final Latency prefillQueue = new Latency();
  public final Latency prefill = new Latency();
  /** TTFT minus both: proxy, event bus, KV transfer and the decode instance. */
  public final Latency ttftRest = new Latency();
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
      PrefillTiming stages = t.prefillTiming();
      if (stages != null) {
        long queueNanos = stages.queueMicros() * 1000;
        long prefillNanos = stages.prefillMicros() * 1000;
        prefillQueue.recordNanos(queueNanos);
        prefill.recordNanos(prefillNanos);
        ttftRest.recordNanos(Math.max(0, t.ttftNanos() - queueNanos - prefillNanos));
      }
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
    JsonObject json = new JsonObject().put("requests", requests)
        .put("outputTokens", outputTokens).put("wallSeconds", wallSeconds)
        .put("outputTokensPerSecond", throughput()).put("coalescedEvents", coalescedEvents)
        .put("ttftMs", ttft.toJson(MS)).put("tpotMs", tpot.toJson(MS))
        .put("itlMs", itl.toJson(MS)).put("e2eMs", e2e.toJson(MS));
    if (prefill.count() > 0) {
      json.put("prefillQueueMs", prefillQueue.toJson(MS)).put("prefillMs", prefill.toJson(MS))
          .put("ttftRestMs", ttftRest.toJson(MS));
    }
    return json;
  }
}
