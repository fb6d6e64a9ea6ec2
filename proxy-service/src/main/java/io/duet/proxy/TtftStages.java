package io.duet.proxy;

/**
 * Where a request's time to its first decoded token went, as the instances that served it
 * measured it: waiting in the prefill instance's queue, computing the prompt, waiting on the
 * decode instance, then pulling and importing the KV. -1 for a stage not reported (yet). When the
 * first token comes from the prefill result ({@code proxy.first-token-from-prefill}), the time to
 * first token is the prefill stages plus the proxy and the event bus; otherwise it is all four
 * plus the proxy, the event bus and the decode instance's first step.
 */
public record TtftStages(long prefillQueueMicros, long prefillMicros, long decodeQueueMicros,
    long kvPullMicros) {

  /** Nothing reported yet. */
  public static final TtftStages NONE = new TtftStages(-1, -1, -1, -1);

  public TtftStages withPrefill(long queueMicros, long computeMicros) {
    return new TtftStages(queueMicros, computeMicros, decodeQueueMicros, kvPullMicros);
  }

  public TtftStages withDecode(long queueMicros, long pullMicros) {
    return new TtftStages(prefillQueueMicros, prefillMicros, queueMicros, pullMicros);
  }
}
