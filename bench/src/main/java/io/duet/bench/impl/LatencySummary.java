package io.duet.bench.impl;

import io.duet.proxy.TtftStages;
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
  /** From the first token to the second. */
  public final Latency secondToken = new Latency();
  public final Latency itl = new Latency();
  public final Latency e2e = new Latency();
  /** TTFT split into the stages the instances measured (requests that report all four). */
  public final Latency prefillQueue = new Latency();
  public final Latency prefill = new Latency();
  public final Latency decodeQueue = new Latency();
  public final Latency kvPull = new Latency();
  /** TTFT minus the four: proxy, event bus and the decode instance's first step. */
  public final Latency ttftRest = new Latency();
  public final int requests;
  public final long outputTokens;
  public final int coalescedEvents;
  public final double wallSeconds;

  public LatencySummary(List<RequestTiming> timings, long runStartNanos) {
    this(timings, wallSeconds(timings, runStartNanos));
  }

  /**
   * The figures of requests that ran for {@code wallSeconds} in all: the sum of the rounds' when
   * they ran in several, with other work between.
   */
  public LatencySummary(List<RequestTiming> timings, double wallSeconds) {
    long tokens = 0;
    int coalesced = 0;
    for (RequestTiming t : timings) {
      ttft.recordNanos(t.ttftNanos());
      double perToken = t.tpotNanos();
      if (!Double.isNaN(perToken)) {
        tpot.recordNanos(perToken);
        secondToken.recordNanos(t.secondTokenNanos());
      }
      t.recordGaps(itl);
      e2e.recordNanos(t.e2eNanos());
      TtftStages stages = t.stages();
      if (stages.prefillMicros() >= 0 && stages.kvPullMicros() >= 0) {
        long[] nanos = {stages.prefillQueueMicros() * 1000, stages.prefillMicros() * 1000,
            stages.decodeQueueMicros() * 1000, stages.kvPullMicros() * 1000};
        prefillQueue.recordNanos(nanos[0]);
        prefill.recordNanos(nanos[1]);
        decodeQueue.recordNanos(nanos[2]);
        kvPull.recordNanos(nanos[3]);
        // The first token comes from the prefill result: the KV pull is off its path (it
        // follows it, or overlaps the prefill when the KV is streamed).
        ttftRest.recordNanos(Math.max(0, t.ttftNanos() - nanos[0] - nanos[1] - nanos[2]));
      }
      tokens += t.tokens();
      coalesced += t.coalescedEvents();
    }
    this.requests = timings.size();
    this.outputTokens = tokens;
    this.coalescedEvents = coalesced;
    this.wallSeconds = wallSeconds;
  }

  /** The time from {@code runStartNanos} to the last event of {@code timings}, in seconds. */
  public static double wallSeconds(List<RequestTiming> timings, long runStartNanos) {
    long end = runStartNanos;
    for (RequestTiming t : timings) {
      end = Math.max(end, t.lastEventNanos());
    }
    return (end - runStartNanos) / 1e9;
  }

  public double throughput() {
    return outputTokens / wallSeconds;
  }

  public JsonObject toJson() {
    JsonObject json = new JsonObject().put("requests", requests)
        .put("outputTokens", outputTokens).put("wallSeconds", wallSeconds)
        .put("outputTokensPerSecond", throughput()).put("coalescedEvents", coalescedEvents)
        .put("ttftMs", ttft.toJson(MS)).put("tpotMs", tpot.toJson(MS))
        .put("secondTokenMs", secondToken.toJson(MS))
        .put("itlMs", itl.toJson(MS)).put("e2eMs", e2e.toJson(MS));
    if (prefill.count() > 0) {
      json.put("prefillQueueMs", prefillQueue.toJson(MS)).put("prefillMs", prefill.toJson(MS))
          .put("decodeQueueMs", decodeQueue.toJson(MS)).put("kvPullMs", kvPull.toJson(MS))
          .put("ttftRestMs", ttftRest.toJson(MS));
    }
    return json;
  }
}
