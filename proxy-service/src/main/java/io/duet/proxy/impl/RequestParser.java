package io.duet.proxy.impl;

import io.duet.proxy.CompletionBackend;
import io.duet.contract.SamplingSpec;
import io.duet.proxy.ChatMessage;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.json.DecodeException;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;

/**
 * Parses and validates the body of {@code /v1/completions} and {@code /v1/chat/completions} the
 * way OpenAI does (and vLLM where OpenAI is silent): parameters of the wrong type or out of range
 * are a 400 naming the parameter; parameters whose non-default values this server cannot honour
 * ({@code n > 1}, logprobs, penalties, tools...) are a 400 rather than silently ignored; unknown
 * fields are ignored. A completion's {@code prompt} is a string, an array of strings, an array of
 * token ids or an array of such arrays: one choice per prompt. Bounds and defaults come from {@link CompletionRules}, which the event-bus
 * front end applies too.
 */
final class RequestParser {

  /** Prompts one completion request may batch. */
  static final int MAX_PROMPTS = 128;
  private static final String PROMPT_TYPES =
      "a string, an array of strings, an array of token ids or an array of such arrays";

  private final CompletionRules rules;

  RequestParser(CompletionRules rules) {
    this.rules = rules;
  }

  /** The JSON object of a request body. */
  static JsonObject json(Buffer body) {
    if (body == null || body.length() == 0) {
      throw ApiError.invalid(null, "Invalid JSON: the request body is empty.");
    }
    try {
      Object value = io.vertx.core.json.Json.decodeValue(body);
      if (value instanceof JsonObject object) {
        return object;
      }
      throw ApiError.invalid(null, "Invalid JSON: the request body must be a JSON object.");
    } catch (DecodeException e) {
      throw ApiError.invalid(null, "Invalid JSON: " + firstLine(e.getMessage()));
    }
  }

  /** @param backend the cluster the request goes to, which knows the model's chat template */
  ParsedRequest parse(ParsedRequest.Kind kind, JsonObject body, CompletionBackend backend) {
    boolean chat = kind == ParsedRequest.Kind.CHAT;
    String model = CompletionRules.requireModel(string(body, "model"));
    List<ParsedRequest.Prompt> prompts = chat
        ? List.of(ParsedRequest.Prompt.text(chatPrompt(body, model, backend)))
        : completionPrompts(body);

    Integer maxTokens = chat ? maxTokens(body, "max_completion_tokens") : null;
    if (maxTokens == null) {
      maxTokens = maxTokens(body, "max_tokens");
    }
    double temperature = CompletionRules.temperature("temperature",
        number(body, "temperature", 1.0));
    double topP = CompletionRules.topP("top_p", number(body, "top_p", 1.0));
    double minP = CompletionRules.minP("min_p", number(body, "min_p", 0.0));
    Long minTokens = longInteger(body, "min_tokens");
    Long topK = longInteger(body, "top_k");
    int k = topK == null ? 0 : CompletionRules.topK("top_k", topK);
    Long seed = longInteger(body, "seed");
    List<String> stop = stop(body);
    List<Integer> stopTokenIds = stopTokenIds(body);
    Boolean ignoreEos = bool(body, "ignore_eos");

    Boolean stream = bool(body, "stream");
    boolean streaming = Boolean.TRUE.equals(stream);
    boolean includeUsage = false;
    boolean continuousUsage = false;
    Object streamOptions = body.getValue("stream_options");
    if (streamOptions != null) {
      if (!(streamOptions instanceof JsonObject so)) {
        throw ApiError.wrongType("stream_options", "an object", streamOptions);
      }
      if (!streaming) {
        throw ApiError.invalid("stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
      }
      includeUsage = Boolean.TRUE.equals(bool(so, "include_usage", "stream_options.include_usage"));
      continuousUsage = includeUsage && Boolean.TRUE.equals(
          bool(so, "continuous_usage_stats", "stream_options.continuous_usage_stats"));
    }
    boolean echo = false;
    if (!chat) {
      echo = Boolean.TRUE.equals(bool(body, "echo"));
      if (echo && prompts.stream().anyMatch(p -> p.text() == null)) {
        throw ApiError.unsupported("echo", "echo is not supported with token-id prompts");
      }
    }

    int n = choicesPerPrompt(body, prompts.size());
    checkUnsupported(kind, body, n);

    SamplingSpec sampling = rules.sampling(kind, maxTokens, temperature, k, topP, minP, seed,
        stopTokenIds, stop, Boolean.TRUE.equals(ignoreEos),
        minTokens == null ? 0 : CompletionRules.minTokens("min_tokens", minTokens));
    return new ParsedRequest(kind, model, prompts, n, sampling, streaming, includeUsage,
        continuousUsage, echo);
  }

  /** A string, an array of strings, an array of token ids or an array of such arrays. */
  private static List<ParsedRequest.Prompt> completionPrompts(JsonObject body) {
    Object prompt = body.getValue("prompt");
    if (prompt == null) {
      throw ApiError.invalid("prompt", "you must provide a prompt parameter");
    }
    if (prompt instanceof String text) {
      return List.of(ParsedRequest.Prompt.text(text));
    }
    if (!(prompt instanceof JsonArray array)) {
      throw ApiError.wrongType("prompt", PROMPT_TYPES, prompt);
    }
    if (array.isEmpty()) {
      throw ApiError.invalid("prompt", "prompt must not be an empty array");
    }
    if (array.getValue(0) instanceof Number) {
      return List.of(new ParsedRequest.Prompt(null, tokenIds("prompt", array)));
    }
    if (array.size() > MAX_PROMPTS) {
      throw ApiError.invalid("prompt", "at most " + MAX_PROMPTS + " prompts per request, got "
          + array.size());
    }
    List<ParsedRequest.Prompt> prompts = new ArrayList<>(array.size());
    for (int i = 0; i < array.size(); i++) {
      Object item = array.getValue(i);
      if (item instanceof String text) {
        prompts.add(ParsedRequest.Prompt.text(text));
      } else if (item instanceof JsonArray ids && !ids.isEmpty()) {
        prompts.add(new ParsedRequest.Prompt(null, tokenIds("prompt[" + i + "]", ids)));
      } else {
        throw ApiError.wrongType("prompt[" + i + "]", "a string or a non-empty array of token ids",
            item);
      }
    }
    return prompts;
  }

  private static List<Integer> tokenIds(String param, JsonArray array) {
    List<Integer> ids = new ArrayList<>(array.size());
    for (int i = 0; i < array.size(); i++) {
      ids.add(CompletionRules.tokenId(param, asLong(param, array.getValue(i),
          "an array of integers")));
    }
    return ids;
  }

  private String chatPrompt(JsonObject body, String model, CompletionBackend backend) {
    Object value = body.getValue("messages");
    if (value == null) {
      throw ApiError.invalid("messages", "you must provide a messages parameter");
    }
    if (!(value instanceof JsonArray array)) {
      throw ApiError.wrongType("messages", "an array", value);
    }
    if (array.isEmpty()) {
      throw ApiError.invalid("messages", "messages must not be empty");
    }
    List<ChatMessage> messages = new ArrayList<>(array.size());
    for (int i = 0; i < array.size(); i++) {
      String param = "messages[" + i + "]";
      Object item = array.getValue(i);
      if (!(item instanceof JsonObject message)) {
        throw ApiError.wrongType(param, "an object", item);
      }
      String role = CompletionRules.chatRole(param + ".role",
          string(message, "role", param + ".role"));
      String content = content(message.getValue("content"), param + ".content",
          role.equals(ChatMessage.ASSISTANT));
      messages.add(new ChatMessage(role, content));
    }
    return rules.chatPrompt(messages, model, backend);
  }

  private static String content(Object content, String param, boolean mayBeNull) {
    if (content == null) {
      return CompletionRules.absentContent(param, mayBeNull);
    }
    if (content instanceof String text) {
      return text;
    }
    if (!(content instanceof JsonArray parts)) {
      throw ApiError.wrongType(param, "a string or an array of content parts", content);
    }
    StringBuilder text = new StringBuilder();
    for (int i = 0; i < parts.size(); i++) {
      String partParam = param + "[" + i + "]";
      if (!(parts.getValue(i) instanceof JsonObject part)) {
        throw ApiError.wrongType(partParam, "an object", parts.getValue(i));
      }
      String type = string(part, "type", partParam + ".type");
      if (!"text".equals(type)) {
        throw ApiError.unsupported(partParam + ".type", "Unsupported content part type '" + type
            + "'; only text parts are supported");
      }
      String partText = string(part, "text", partParam + ".text");
      if (partText == null) {
        throw ApiError.invalid(partParam + ".text", "a text part needs a text");
      }
      if (text.length() > 0) {
        text.append('\n');
      }
      text.append(partText);
    }
    return text.toString();
  }

  private static List<String> stop(JsonObject body) {
    Object stop = body.getValue("stop");
    List<String> sequences = new ArrayList<>();
    if (stop == null) {
      return sequences;
    }
    if (stop instanceof String text) {
      sequences.add(text);
    } else if (stop instanceof JsonArray array) {
      for (int i = 0; i < array.size(); i++) {
        if (!(array.getValue(i) instanceof String text)) {
          throw ApiError.wrongType("stop", "a string or an array of strings", array.getValue(i));
        }
        sequences.add(text);
      }
    } else {
      throw ApiError.wrongType("stop", "a string or an array of strings", stop);
    }
    return CompletionRules.stop("stop", sequences);
  }

  private static List<Integer> stopTokenIds(JsonObject body) {
    Object value = body.getValue("stop_token_ids");
    if (value == null) {
      return List.of();
    }
    if (!(value instanceof JsonArray array)) {
      throw ApiError.wrongType("stop_token_ids", "an array of integers", value);
    }
    return tokenIds("stop_token_ids", array);
  }

  /**
   * OpenAI's {@code n}: 1 to {@value #MAX_PROMPTS}, and no more choices in all than that (each
   * is a sequence of its own on the cluster).
   */
  private static int choicesPerPrompt(JsonObject body, int prompts) {
    Integer n = integer(body, "n", 1, MAX_PROMPTS);
    int choices = n == null ? 1 : n;
    if ((long) choices * prompts > MAX_PROMPTS) {
      throw ApiError.invalid("n", "at most " + MAX_PROMPTS + " choices per request: n (" + choices
          + ") times the number of prompts (" + prompts + ")");
    }
    return choices;
  }

  /** Parameters of OpenAI's API whose non-default values this server does not implement. */
  private static void checkUnsupported(ParsedRequest.Kind kind, JsonObject body, int n) {
    // best_of picks the most likely of its choices, which needs logprobs; equal to n it is
    // the default (every choice returned).
    Integer bestOf = integer(body, "best_of", 1, Integer.MAX_VALUE);
    if (bestOf != null && bestOf != n) {
      throw ApiError.unsupported("best_of",
          "best_of other than n is not supported (best_of must equal n, " + n + ")");
    }
    if (kind == ParsedRequest.Kind.CHAT) {
      Boolean logprobs = bool(body, "logprobs");
      if (Boolean.TRUE.equals(logprobs)) {
        throw ApiError.unsupported("logprobs", "logprobs are not supported");
      }
      Integer topLogprobs = integer(body, "top_logprobs", 0, 20);
      if (topLogprobs != null && topLogprobs > 0) {
        throw ApiError.unsupported("top_logprobs", "logprobs are not supported");
      }
      Object tools = body.getValue("tools");
      if (tools != null && !(tools instanceof JsonArray array && array.isEmpty())) {
        throw ApiError.unsupported("tools", "tools are not supported");
      }
      Object format = body.getValue("response_format");
      if (format != null) {
        if (!(format instanceof JsonObject object)) {
          throw ApiError.wrongType("response_format", "an object", format);
        }
        if (!"text".equals(object.getValue("type"))) {
          throw ApiError.unsupported("response_format",
              "response_format " + object.getValue("type")
              + " is not supported; only {\"type\": \"text\"}");
        }
      }
    } else {
      Integer logprobs = integer(body, "logprobs", 0, 5);
      if (logprobs != null && logprobs > 0) {
        throw ApiError.unsupported("logprobs", "logprobs are not supported");
      }
      String suffix = string(body, "suffix");
      if (suffix != null && !suffix.isEmpty()) {
        throw ApiError.unsupported("suffix", "suffix is not supported");
      }
    }
    for (String penalty : List.of("presence_penalty", "frequency_penalty")) {
      double value = CompletionRules.inRange(penalty, number(body, penalty, 0.0), -2.0, true, 2.0);
      if (value != 0.0) {
        throw ApiError.unsupported(penalty, penalty + " is not supported (only 0)");
      }
    }
    double repetition = CompletionRules.inRange("repetition_penalty",
        number(body, "repetition_penalty", 1.0), 0.0, false, Double.MAX_VALUE);
    if (repetition != 1.0) {
      throw ApiError.unsupported("repetition_penalty",
          "repetition_penalty is not supported (only 1)");
    }
    Object logitBias = body.getValue("logit_bias");
    if (logitBias != null) {
      if (!(logitBias instanceof JsonObject bias)) {
        throw ApiError.wrongType("logit_bias", "an object", logitBias);
      }
      if (!bias.isEmpty()) {
        throw ApiError.unsupported("logit_bias", "logit_bias is not supported");
      }
    }
  }

  private static String string(JsonObject json, String name) {
    return string(json, name, name);
  }

  private static String string(JsonObject json, String name, String param) {
    Object value = json.getValue(name);
    if (value == null || value instanceof String) {
      return (String) value;
    }
    throw ApiError.wrongType(param, "a string", value);
  }

  private static Boolean bool(JsonObject json, String name) {
    return bool(json, name, name);
  }

  private static Boolean bool(JsonObject json, String name, String param) {
    Object value = json.getValue(name);
    if (value == null || value instanceof Boolean) {
      return (Boolean) value;
    }
    throw ApiError.wrongType(param, "a boolean", value);
  }

  /** A number parameter; its range is for the caller to check. */
  private static double number(JsonObject json, String name, double defaultValue) {
    Object value = json.getValue(name);
    if (value == null) {
      return defaultValue;
    }
    if (!(value instanceof Number number)) {
      throw ApiError.wrongType(name, "a number", value);
    }
    return number.doubleValue();
  }

  private static Integer integer(JsonObject json, String name, int min, int max) {
    Long value = longInteger(json, name);
    return value == null ? null : CompletionRules.inRange(name, value, min, max);
  }

  private static Integer maxTokens(JsonObject json, String name) {
    Long value = longInteger(json, name);
    return value == null ? null : CompletionRules.maxTokens(name, value);
  }

  private static Long longInteger(JsonObject json, String name) {
    return asLong(name, json.getValue(name), "an integer");
  }

  /** An integral JSON number (pydantic's lax mode also takes 16.0 for 16), else a 400. */
  private static Long asLong(String param, Object value, String expected) {
    if (value == null) {
      return null;
    }
    if (value instanceof Integer || value instanceof Long || value instanceof Short
        || value instanceof Byte) {
      return ((Number) value).longValue();
    }
    if (value instanceof BigInteger big) {
      if (big.bitLength() < 64) {
        return big.longValue();
      }
      throw ApiError.invalid(param, param + " is out of range");
    }
    if (value instanceof Number number) {
      BigDecimal decimal = value instanceof BigDecimal bd ? bd
          : Double.isFinite(number.doubleValue()) ? BigDecimal.valueOf(number.doubleValue()) : null;
      if (decimal != null && decimal.stripTrailingZeros().scale() <= 0) {
        try {
          return decimal.longValueExact();
        } catch (ArithmeticException e) {
          throw ApiError.invalid(param, param + " is out of range");
        }
      }
    }
    throw ApiError.wrongType(param, expected, value);
  }

  private static String firstLine(String message) {
    if (message == null) {
      return "malformed body";
    }
    int newline = message.indexOf('\n');
    return newline < 0 ? message : message.substring(0, newline);
  }
}
