package io.duet.proxy.routing;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What this proxy has in flight on each instance: prompt tokens sent to each prefill instance
 * and not yet answered, requests sent to each decode target and not yet ended. Heartbeats are up
 * to a period old; adding these counts to them keeps a burst of requests from piling onto the
 * instance that looked idlest at the last heartbeat. {@link Routing} hands them to the policies
 * in the candidates.
 *
 * <p>One instance serves the backends of all the proxy's event loops, so that every choice
 * counts what every event loop has sent. The counts are concurrent maps changed one atomic
 * merge at a time, so none is lost; a choice and the count it adds are two steps, so two event
 * loops choosing at the same instant may choose the same instance, and the choices after them
 * see both. A count that falls to zero is removed, so instances that left leave nothing behind.
 */
public final class InFlightCounts {

  private final Map<String, Long> promptTokens = new ConcurrentHashMap<>();
  private final Map<DecodeTarget, Integer> requests = new ConcurrentHashMap<>();

  /** Prompt tokens in flight on a prefill instance. */
  public long promptTokens(String prefillInstanceId) {
    return promptTokens.getOrDefault(prefillInstanceId, 0L);
  }

  /** Requests in flight on a decode target. */
  public int requests(DecodeTarget target) {
    return requests.getOrDefault(target, 0);
  }

  public void prefillStarted(String prefillInstanceId, long tokens) {
    promptTokens.merge(prefillInstanceId, tokens, Long::sum);
  }

  public void prefillEnded(String prefillInstanceId, long tokens) {
    promptTokens.computeIfPresent(prefillInstanceId, (id, n) -> n == tokens ? null : n - tokens);
  }

  public void decodeStarted(DecodeTarget target) {
    requests.merge(target, 1, Integer::sum);
  }

  public void decodeEnded(DecodeTarget target) {
    requests.computeIfPresent(target, (t, n) -> n == 1 ? null : n - 1);
  }
}
