package io.duet.proxy;

import io.duet.contract.SamplingSpec;

/**
 * One completion to run: the prompt text (a chat request's messages already rendered by its
 * {@link ChatTemplate}) and how to sample it.
 *
 * @param requestId the id the client sees ({@code cmpl-...} or {@code chatcmpl-...}), unique
 *     per request; the cluster uses it to name the request's work and KV
 */
public record CompletionJob(String requestId, String model, String prompt, SamplingSpec sampling) {
}
