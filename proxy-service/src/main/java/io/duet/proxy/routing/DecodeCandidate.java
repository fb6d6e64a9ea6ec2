package io.duet.proxy.routing;

import io.duet.contract.InstanceInfo;

/**
 * A decode target a request may go to.
 *
 * @param entry the target's latest registry entry (heartbeat load and capacity included)
 * @param localRequests requests this proxy has sent to the target that have not ended, counted
 *     by every event loop of the proxy; the heartbeat is up to a period old and may not show them
 * @param localTokens the {@linkplain RoutingRequest#decodeTokens() prompt and generation
 *     tokens} of those requests
 */
public record DecodeCandidate(DecodeTarget target, InstanceInfo entry, int localRequests,
    long localTokens) {
}
