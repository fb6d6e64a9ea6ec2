package io.duet.bench.impl;

import io.duet.proxy.TtftStages;
import java.util.Arrays;

/**
 * When one request started and when each of its token events arrived (one token per event,
 * or several when a stream coalesced them). Not thread-safe: filled by one thread or context.
 */
public final class RequestTiming {

  private final long startNanos;
  private long[] eventNanos = new long[64];
  private int[] eventTokens = new int[64];
  private int events;
  private int tokens;
  private TtftStages stages = TtftStages.NONE;

  public RequestTiming(long startNanos) {
    this.startNanos = startNanos;
  }

  /** An event carrying {@code newTokens} tokens (0 for an event with only a finish reason). */
  public void event(long nanos, int newTokens) {
    if (newTokens <= 0) {
      return;
    }
    if (events == eventNanos.length) {
      eventNanos = Arrays.copyOf(eventNanos, events * 2);
      eventTokens = Arrays.copyOf(eventTokens, events * 2);
    }
    eventNanos[events] = nanos;
    eventTokens[events++] = newTokens;
    tokens += newTokens;
  }

  /** The stages of the TTFT that the instances reported, where the backend has them. */
  public void stages(TtftStages reported) {
    stages = reported;
  }

  /** Those stages; {@link TtftStages#NONE} where the backend has none. */
  public TtftStages stages() {
    return stages;
  }

  public int tokens() {
    return tokens;
  }

  public int events() {
    return events;
  }

  /** Events that carried more than one token. */
  public int coalescedEvents() {
    int n = 0;
    for (int i = 0; i < events; i++) {
      if (eventTokens[i] > 1) {
        n++;
      }
    }
    return n;
  }

  /** Time to first token: start to the first event with a token. */
  public long ttftNanos() {
    requireEvents();
    return eventNanos[0] - startNanos;
  }

  /** Mean time per output token after the first; NaN with fewer than two tokens. */
  public double tpotNanos() {
    requireEvents();
    return tokens < 2 ? Double.NaN
        : (double) (eventNanos[events - 1] - eventNanos[0]) / (tokens - 1);
  }

  /**
   * From the first token to the second: 0 when one event carried both; NaN with fewer than two
   * tokens.
   */
  public double secondTokenNanos() {
    requireEvents();
    if (tokens < 2) {
      return Double.NaN;
    }
    return eventTokens[0] >= 2 ? 0 : eventNanos[1] - eventNanos[0];
  }

  /** Start to the last token. */
  public long e2eNanos() {
    requireEvents();
    return eventNanos[events - 1] - startNanos;
  }

  public long lastEventNanos() {
    requireEvents();
    return eventNanos[events - 1];
  }

  /** Records the gaps between consecutive events (inter-token latency). */
  public void recordGaps(Latency into) {
    for (int i = 1; i < events; i++) {
      into.recordNanos(eventNanos[i] - eventNanos[i - 1]);
    }
  }

  private void requireEvents() {
    if (events == 0) {
      throw new IllegalStateException("the request produced no token");
    }
  }
}
