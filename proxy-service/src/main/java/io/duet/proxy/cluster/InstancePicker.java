package io.duet.proxy.cluster;

import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Chooses a prefill and a decode instance for a request from the live registry. Heartbeats are
 * a second old, so the picker adds what this proxy itself has sent since: a burst of requests
 * spreads out instead of piling onto the instance that looked idlest at the last heartbeat.
 *
 * <p>Prefill: least prompt tokens in flight. Decode: least projected load, (running + waiting)
 * relative to its batch capacity. Only instances serving the model, and decode instances with
 * the prefill instance's KV layout fingerprint, are candidates.
 *
 * <p>One picker serves the backends of all the proxy's event loops, so that each pick counts
 * what every event loop has sent. The counts are concurrent maps changed one atomic merge at a
 * time, so none is lost; a pick and the count it adds are two steps, so two event loops picking
 * at the same instant may choose the same instance, and the picks after them see both.
 */
final class InstancePicker {

  private final Map<String, Long> localTokens = new ConcurrentHashMap<>();
  private final Map<String, Integer> localRequests = new ConcurrentHashMap<>();

  Optional<InstanceInfo> prefill(List<InstanceInfo> instances, String model) {
    InstanceInfo best = null;
    long bestLoad = Long.MAX_VALUE;
    for (InstanceInfo i : instances) {
      if (i.role() != Role.PREFILL || !i.modelName().equals(model)) {
        continue;
      }
      long load = i.load().inFlightTokens() + localTokens.getOrDefault(i.instanceId(), 0L);
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    return Optional.ofNullable(best);
  }

  /** @param excluded instance ids not to pick (they did not take this request) */
  Optional<InstanceInfo> decode(List<InstanceInfo> instances, String model, String fingerprint,
      Set<String> excluded) {
    InstanceInfo best = null;
    double bestLoad = Double.MAX_VALUE;
    for (InstanceInfo i : instances) {
      if (i.role() != Role.DECODE || !i.modelName().equals(model)
          || !i.fingerprint().equals(fingerprint) || excluded.contains(i.instanceId())) {
        continue;
      }
      double load = (i.load().running() + i.load().waiting()
          + localRequests.getOrDefault(i.instanceId(), 0)) / (double) Math.max(1, i.capacity());
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    return Optional.ofNullable(best);
  }

  void prefillStarted(String instanceId, long tokens) {
    localTokens.merge(instanceId, tokens, Long::sum);
  }

  void prefillEnded(String instanceId, long tokens) {
    localTokens.computeIfPresent(instanceId, (k, v) -> v - tokens == 0 ? null : v - tokens);
  }

  void decodeStarted(String instanceId) {
    localRequests.merge(instanceId, 1, Integer::sum);
  }

  void decodeEnded(String instanceId) {
    localRequests.computeIfPresent(instanceId, (k, v) -> v == 1 ? null : v - 1);
  }
}
