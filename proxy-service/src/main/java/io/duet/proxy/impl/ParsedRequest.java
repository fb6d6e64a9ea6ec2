package io.duet.proxy.impl;

import io.duet.contract.SamplingSpec;
import java.util.List;
import java.util.UUID;

/**
 * A validated completion or chat completion request.
 *
 * @param prompts the prompts: one for a chat (its messages rendered by the chat template), one
 *     or more for a completion
 * @param n the choices generated for each prompt (OpenAI's {@code n})
 * @param includeUsage {@code stream_options.include_usage}: a last chunk with the usage
 * @param continuousUsage {@code stream_options.continuous_usage_stats} (vLLM): usage in every
 *     chunk; only in effect together with {@code includeUsage}, as in vLLM
 * @param echo completions only: the prompt is sent back before the completion
 */
record ParsedRequest(Kind kind, String model, List<Prompt> prompts, int n, SamplingSpec sampling,
    boolean stream, boolean includeUsage, boolean continuousUsage, boolean echo) {

  ParsedRequest {
    prompts = List.copyOf(prompts);
  }

  /** One prompt: a text, or token ids (then {@code text} is null). */
  record Prompt(String text, List<Integer> tokens) {

    Prompt {
      tokens = List.copyOf(tokens);
    }

    static Prompt text(String text) {
      return new Prompt(text, List.of());
    }
  }

  enum Kind {
    COMPLETION("/v1/completions", "cmpl-"),
    CHAT("/v1/chat/completions", "chatcmpl-");

    final String path;
    final String idPrefix;

    Kind(String path, String idPrefix) {
      this.path = path;
      this.idPrefix = idPrefix;
    }

    /** A new request id of this kind, as OpenAI's look: the prefix and 32 hex digits. */
    String newRequestId() {
      return idPrefix + UUID.randomUUID().toString().replace("-", "");
    }
  }
}
