package io.duet.proxy;

/**
 * Where a request's time to first token went on its prefill instance, as that instance measured
 * it: waiting in its queue, then computing the prompt. What remains of the time to first token
 * is the proxy, the event bus, the KV transfer and the decode instance.
 */
public record PrefillTiming(long queueMicros, long prefillMicros) {
}
