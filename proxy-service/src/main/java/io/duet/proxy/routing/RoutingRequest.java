package io.duet.proxy.routing;

/**
 * What a policy knows of the request it routes.
 *
 * @param promptTokens for the prefill choice an estimate (the prompt is not tokenized yet: its
 *     characters / 4), for the decode choice the prefill instance's count
 */
public record RoutingRequest(String requestId, String model, long promptTokens) {
}
