package io.duet.proxy.impl;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.List;

/**
 * The OpenAI wire format of completions, chat completions and their stream chunks. An answer has
 * {@code n} choices per prompt, numbered prompt by prompt; in a stream, the chunks of the
 * choices interleave, each naming its index.
 */
final class OpenAiFormat {

  static final String TEXT_COMPLETION = "text_completion";
  static final String CHAT_COMPLETION = "chat.completion";
  static final String CHAT_COMPLETION_CHUNK = "chat.completion.chunk";
  /**
   * OpenAI's {@code system_fingerprint}: which backend configuration answered. One serving stack
   * here, so one value; clients that log it or compare it across answers find it everywhere.
   */
  static final String SYSTEM_FINGERPRINT = "fp_duet";

  /** One whole choice: its index, its text and why it ended. */
  record Choice(int index, String text, String finishReason) {
  }

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
        .put("model", model).put("system_fingerprint", SYSTEM_FINGERPRINT);
  }

  /** A whole {@code text_completion}. */
  JsonObject completion(List<Choice> choices, JsonObject usage) {
    JsonArray array = new JsonArray();
    for (Choice choice : choices) {
      array.add(textChoice(choice.index(), choice.text(), choice.finishReason()));
    }
    return head(TEXT_COMPLETION).put("choices", array).put("usage", usage);
  }

  /** A whole {@code chat.completion}: each choice's text is its message's content. */
  JsonObject chatCompletion(List<Choice> choices, JsonObject usage) {
    JsonArray array = new JsonArray();
    for (Choice choice : choices) {
      array.add(new JsonObject().put("index", choice.index())
          .put("message", new JsonObject().put("role", "assistant").put("content", choice.text())
              .put("refusal", null).put("annotations", new JsonArray()))
          .put("logprobs", null).put("finish_reason", choice.finishReason()));
    }
    return head(CHAT_COMPLETION).put("choices", array).put("usage", usage);
  }

  /** A streamed {@code text_completion} chunk of choice {@code index}: {@code text} is the delta. */
  JsonObject completionChunk(int index, String text, String finishReason) {
    return head(TEXT_COMPLETION).put("choices",
        new JsonArray().add(textChoice(index, text, finishReason)));
  }

  private static JsonObject textChoice(int index, String text, String finishReason) {
    return new JsonObject().put("index", index).put("text", text).put("logprobs", null)
        .put("finish_reason", finishReason);
  }

  /** A streamed {@code chat.completion.chunk} of choice {@code index} with {@code delta}. */
  JsonObject chatChunk(int index, JsonObject delta, String finishReason) {
    return head(CHAT_COMPLETION_CHUNK).put("choices", new JsonArray().add(new JsonObject()
        .put("index", index).put("delta", delta).put("logprobs", null)
        .put("finish_reason", finishReason)));
  }

  /** The last chunk of a stream with {@code include_usage}: no choices, the usage. */
  JsonObject usageChunk(boolean chat, JsonObject usage) {
    return head(chat ? CHAT_COMPLETION_CHUNK : TEXT_COMPLETION).put("choices", new JsonArray())
        .put("usage", usage);
  }
}
