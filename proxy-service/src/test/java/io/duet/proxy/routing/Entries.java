package io.duet.proxy.routing;

import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import java.util.Collections;

/** Registry entries as heartbeats announce them, for the routing tests. */
public final class Entries {

  public static final String MODEL = "m";
  public static final String FINGERPRINT = "kv-a";

  private Entries() {
  }

  /** A prefill instance with {@code inFlightTokens} prompt tokens in its last heartbeat. */
  public static InstanceInfo prefill(String id, String model, long inFlightTokens) {
    return new InstanceInfo(id, Role.PREFILL, 0, 1, "127.0.0.1", 1, 2, model, FINGERPRINT, "plain", 2048,
        new InstanceInfo.Load(0, 0, inFlightTokens, 0, 0), 0);
  }

  /** A decode instance (one rank, 0) of {@link #MODEL} and {@link #FINGERPRINT}. */
  public static InstanceInfo decode(String id, int capacity, int running, int waiting) {
    return decode(id, MODEL, FINGERPRINT, capacity, running, waiting);
  }

  public static InstanceInfo decode(String id, String model, String fingerprint, int capacity,
      int running, int waiting) {
    return new InstanceInfo(id, Role.DECODE, 0, 1, "127.0.0.1", 1, 0, model, fingerprint, "plain", capacity,
        new InstanceInfo.Load(running, waiting, 0, 0, 0), 0);
  }

  /** {@code entry} as a decode candidate with {@code localRequests} of this proxy in flight. */
  public static DecodeCandidate candidate(InstanceInfo entry, int localRequests) {
    return candidate(entry, localRequests, 0);
  }

  /**
   * {@code entry} as a decode candidate with {@code localRequests} of this proxy in flight,
   * holding {@code localTokens}.
   */
  public static DecodeCandidate candidate(InstanceInfo entry, int localRequests,
      long localTokens) {
    return new DecodeCandidate(DecodeTarget.of(entry), entry, localRequests, localTokens);
  }

  /**
   * A request for {@link #MODEL} whose prompt is {@code promptTokens} token ids, generating up to
   * {@code maxTokens}.
   */
  public static RoutingRequest request(String id, int promptTokens, int maxTokens) {
    return RoutingRequest.ofTokens(id, MODEL, Collections.nCopies(promptTokens, 1), maxTokens);
  }
}
