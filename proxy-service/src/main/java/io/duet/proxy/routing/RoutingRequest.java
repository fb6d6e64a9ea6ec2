package io.duet.proxy.routing;

import java.util.List;

/**
 * What a policy knows of the request it routes.
 *
 * @param promptTokens for the prefill choice an estimate (the prompt is not tokenized yet: its
 *     characters / {@value #CHARS_PER_TOKEN}, or its token ids), for the decode choice the
 *     prefill instance's count
 * @param maxTokens the most tokens the request may generate
 * @param prompt the prompt text; null for a prompt of token ids
 * @param promptTokenIds the prompt's token ids; empty for a text prompt
 */
public record RoutingRequest(String requestId, String model, long promptTokens, int maxTokens,
    String prompt, List<Integer> promptTokenIds) {

  /**
   * Characters that stand for one token in a text the proxy has not tokenized: the reference
   * deployment balances prefill by prompt length in tokens, and the proxy only has the text.
   */
  public static final int CHARS_PER_TOKEN = 4;

  public RoutingRequest {
    promptTokenIds = List.copyOf(promptTokenIds);
  }

  /** A request of a text prompt, its tokens estimated from its length. */
  public static RoutingRequest ofText(String requestId, String model, String prompt,
      int maxTokens) {
    return new RoutingRequest(requestId, model, Math.max(1, prompt.length() / CHARS_PER_TOKEN),
        maxTokens, prompt, List.of());
  }

  /** A request of a prompt of token ids. */
  public static RoutingRequest ofTokens(String requestId, String model,
      List<Integer> promptTokenIds, int maxTokens) {
    return new RoutingRequest(requestId, model, promptTokenIds.size(), maxTokens, null,
        promptTokenIds);
  }

  /** The same request with its prompt's token count as its prefill instance found it. */
  public RoutingRequest withPromptTokens(long count) {
    return new RoutingRequest(requestId, model, count, maxTokens, prompt, promptTokenIds);
  }

  /**
   * The most tokens the request may hold on a decode target: its prompt and all it may
   * generate.
   */
  public long decodeTokens() {
    return promptTokens + maxTokens;
  }
}
