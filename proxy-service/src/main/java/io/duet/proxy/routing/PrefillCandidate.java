package io.duet.proxy.routing;

import io.duet.contract.InstanceInfo;

/**
 * A prefill instance a request may go to.
 *
 * @param entry its latest registry entry (heartbeat load included)
 * @param localPromptTokens prompt tokens this proxy has sent it that it has not answered yet,
 *     counted by every event loop of the proxy; the heartbeat is up to a period old and may not
 *     show them
 */
public record PrefillCandidate(InstanceInfo entry, long localPromptTokens) {
}
