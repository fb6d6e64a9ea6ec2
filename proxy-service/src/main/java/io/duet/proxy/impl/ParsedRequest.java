package io.duet.proxy.impl;

import io.duet.contract.SamplingSpec;
import java.util.UUID;

/**
 * A validated completion or chat completion request.
 *
 * @param prompt the prompt text (chat messages already rendered by the chat template)
 * @param includeUsage {@code stream_options.include_usage}: a last chunk with the usage
 * @param continuousUsage {@code stream_options.continuous_usage_stats} (vLLM): usage in every
 *     chunk; only in effect together with {@code includeUsage}, as in vLLM
 * @param echo completions only: the prompt is sent back before the completion
 */
record ParsedRequest(Kind kind, String model, String prompt, SamplingSpec sampling,
    boolean stream, boolean includeUsage, boolean continuousUsage, boolean echo) {

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
