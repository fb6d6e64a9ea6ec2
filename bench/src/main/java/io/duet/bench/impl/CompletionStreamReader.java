package io.duet.bench.impl;

import io.vertx.core.buffer.Buffer;
import io.vertx.core.json.DecodeException;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;

/**
 * Reads the server-sent events of one streamed OpenAI completion, line by line as they arrive,
 * into a {@link RequestTiming}. A chunk's tokens are the growth of its
 * {@code usage.completion_tokens} when the server sends usage in every chunk (vLLM's
 * {@code continuous_usage_stats}, which Duet honours), else one per chunk with text. A chunk
 * without choices (the usage chunk at the end) carries no tokens.
 */
public final class CompletionStreamReader {

  private final RequestTiming timing;
  private int usageCompletionTokens;
  private int promptTokens = -1;
  private boolean done;
  private String error;

  public CompletionStreamReader(RequestTiming timing) {
    this.timing = timing;
  }

  /** One line of the body, received at {@code nanos}. */
  public void line(Buffer line, long nanos) {
    String text = line.toString().strip();
    if (!text.startsWith("data:") || done || error != null) {
      return;
    }
    String data = text.substring("data:".length()).strip();
    if (data.equals("[DONE]")) {
      done = true;
      return;
    }
    JsonObject chunk;
    try {
      chunk = new JsonObject(data);
    } catch (DecodeException e) {
      error = "bad event";
      return;
    }
    if (chunk.getValue("error") != null) {
      error = "error event";
      return;
    }
    JsonObject usage = chunk.getJsonObject("usage");
    if (usage != null) {
      promptTokens = usage.getInteger("prompt_tokens", promptTokens);
    }
    JsonArray choices = chunk.getJsonArray("choices");
    if (choices == null || choices.isEmpty()) {
      return;
    }
    int tokens;
    if (usage != null && usage.getInteger("completion_tokens") != null) {
      int total = usage.getInteger("completion_tokens");
      tokens = total - usageCompletionTokens;
      usageCompletionTokens = total;
    } else {
      String piece = choices.getJsonObject(0).getString("text", "");
      tokens = piece.isEmpty() ? 0 : 1;
    }
    timing.event(nanos, tokens);
  }

  /**
   * Why the stream failed, once its body ended: an error event, a malformed event, no
   * {@code [DONE]} at the end, or no token at all; null when it succeeded.
   */
  public String failure() {
    if (error != null) {
      return error;
    }
    if (!done) {
      return "no [DONE]";
    }
    return timing.tokens() == 0 ? "no tokens" : null;
  }

  /** The prompt's tokens as the server counted them; -1 when it sent no usage. */
  public int promptTokens() {
    return promptTokens;
  }
}
