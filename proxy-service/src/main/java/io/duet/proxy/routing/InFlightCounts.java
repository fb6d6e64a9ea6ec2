package io.duet.proxy.routing;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What this proxy has in flight on each instance: prompt tokens sent to each prefill instance
 * and not yet answered; requests sent to each decode target and not yet ended, with their
 * {@linkplain RoutingRequest#decodeTokens() tokens}. Heartbeats are up to a period old; adding
 * these counts to them keeps a burst of requests from piling onto the instance that looked
 * idlest at the last heartbeat. {@link Routing} hands them to the policies in the candidates.
 *
 * <p>One instance serves the backends of all the proxy's event loops, so that every choice
 * counts what every event loop has sent. The counts are concurrent maps changed one atomic
 * merge at a time, so none is lost. The prefill counts are kept by the caller: a choice and the
 * count it adds are two steps, so two event loops choosing at the same instant may choose the
 * same instance, and the choices after them see both. The decode counts are kept by
 * {@link Routing}, which changes them under the lock of its per-target cap. A count that falls
 * to zero is removed, so instances that left leave nothing behind.
 */
public final class InFlightCounts {

  /** One decode target's requests and their tokens. */
  private record Decode(int requests, long tokens) {

    Decode plus(Decode other) {
      return new Decode(requests + other.requests, tokens + other.tokens);
    }

    /** This less {@code other}; null when nothing is left. */
    Decode minus(Decode other) {
      return requests <= other.requests ? null
          : new Decode(requests - other.requests, tokens - other.tokens);
    }
  }

  private final Map<String, Long> promptTokens = new ConcurrentHashMap<>();
  private final Map<DecodeTarget, Decode> decode = new ConcurrentHashMap<>();

  /** Prompt tokens in flight on a prefill instance. */
  public long promptTokens(String prefillInstanceId) {
    return promptTokens.getOrDefault(prefillInstanceId, 0L);
  }

  /** Requests in flight on a decode target. */
  public int requests(DecodeTarget target) {
    Decode counts = decode.get(target);
    return counts == null ? 0 : counts.requests();
  }

  /** The prompt and generation tokens of the requests in flight on a decode target. */
  public long tokens(DecodeTarget target) {
    Decode counts = decode.get(target);
    return counts == null ? 0 : counts.tokens();
  }

  public void prefillStarted(String prefillInstanceId, long tokens) {
    promptTokens.merge(prefillInstanceId, tokens, Long::sum);
  }

  public void prefillEnded(String prefillInstanceId, long tokens) {
    promptTokens.computeIfPresent(prefillInstanceId, (id, n) -> n == tokens ? null : n - tokens);
  }

  void decodeStarted(DecodeTarget target, long tokens) {
    decode.merge(target, new Decode(1, tokens), Decode::plus);
  }

  void decodeEnded(DecodeTarget target, long tokens) {
    decode.computeIfPresent(target, (t, counts) -> counts.minus(new Decode(1, tokens)));
  }
}
