package io.duet.proxy;

import io.duet.contract.SamplingSpec;
import java.util.List;

/**
 * One completion to run: the prompt (a text, a chat request's messages already rendered by its
 * {@link ChatTemplate}, or token ids) and how to sample it.
 *
 * @param requestId the id the client sees ({@code cmpl-...} or {@code chatcmpl-...}, or an
 *     event-bus client's own), unique per request; the cluster uses it to name the request's
 *     work and KV
 * @param prompt the prompt text; null when {@code promptTokens} are given
 * @param promptTokens token ids to prefill instead of a text; empty for a text prompt
 * @param coalesce the client gets the answer whole at its end: after the first token, the
 *     stream may deliver the tokens of several steps in one event
 */
public record CompletionJob(String requestId, String model, String prompt,
    List<Integer> promptTokens, SamplingSpec sampling, boolean coalesce) {

  public CompletionJob {
    promptTokens = List.copyOf(promptTokens);
  }

  /** A job whose stream delivers an event per step. */
  public CompletionJob(String requestId, String model, String prompt,
      List<Integer> promptTokens, SamplingSpec sampling) {
    this(requestId, model, prompt, promptTokens, sampling, false);
  }

  /** A job with a text prompt. */
  public CompletionJob(String requestId, String model, String prompt, SamplingSpec sampling) {
    this(requestId, model, prompt, List.of(), sampling);
  }
}
