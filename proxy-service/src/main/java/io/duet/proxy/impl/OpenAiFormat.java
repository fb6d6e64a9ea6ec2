package io.duet.proxy.impl;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;

/** The OpenAI wire format of completions, chat completions and their stream chunks. */
final class OpenAiFormat {

  static final String TEXT_COMPLETION = "text_completion";
  static final String CHAT_COMPLETION = "chat.completion";
  static final String CHAT_COMPLETION_CHUNK = "chat.completion.chunk";

  private final String id;
  private final long created;
  private final String model;

  OpenAiFormat(String id, long created, String model) {
    this.id = id;
    this.created = created;
    this.model = model;
  }

  static JsonObject usage(int promptTokens, int completionTokens) {
    return new JsonObject().put("prompt_tokens", promptTokens)
        .put("completion_tokens", completionTokens)
        .put("total_tokens", promptTokens + completionTokens);
  }

  private JsonObject head(String object) {
    return new JsonObject().put("id", id).put("object", object).put("created", created)
        .put("model", model);
  }

  /** A whole {@code text_completion}. */
  JsonObject completion(String text, String finishReason, JsonObject usage) {
    return head(TEXT_COMPLETION).put("choices", new JsonArray().add(new JsonObject()
        .put("index", 0).put("text", text).put("logprobs", null)
        .put("finish_reason", finishReason))).put("usage", usage);
  }

  /** A whole {@code chat.completion}. */
  JsonObject chatCompletion(String content, String finishReason, JsonObject usage) {
    return head(CHAT_COMPLETION).put("choices", new JsonArray().add(new JsonObject()
        .put("index", 0)
        .put("message", new JsonObject().put("role", "assistant").put("content", content))
        .put("logprobs", null).put("finish_reason", finishReason))).put("usage", usage);
  }

  /** A streamed {@code text_completion} chunk: {@code text} is the delta. */
  JsonObject completionChunk(String text, String finishReason) {
    return head(TEXT_COMPLETION).put("choices", new JsonArray().add(new JsonObject()
        .put("index", 0).put("text", text).put("logprobs", null)
        .put("finish_reason", finishReason)));
  }

  /** A streamed {@code chat.completion.chunk} with {@code delta}. */
  JsonObject chatChunk(JsonObject delta, String finishReason) {
    return head(CHAT_COMPLETION_CHUNK).put("choices", new JsonArray().add(new JsonObject()
        .put("index", 0).put("delta", delta).put("logprobs", null)
        .put("finish_reason", finishReason)));
  }

  /** The last chunk of a stream with {@code include_usage}: no choices, the usage. */
  JsonObject usageChunk(boolean chat, JsonObject usage) {
    return head(chat ? CHAT_COMPLETION_CHUNK : TEXT_COMPLETION).put("choices", new JsonArray())
        .put("usage", usage);
  }
}
