package io.duet.proxy.impl;

import io.duet.contract.Failure;
import io.duet.contract.SamplingSpec;
import io.duet.proxy.ChatMessage;
import io.duet.proxy.ChatTemplate;
import io.duet.proxy.CompletionBackend;
import io.duet.proxy.CompletionException;
import io.duet.proxy.ProxyOptions;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * What a completion must satisfy before it runs, whichever front end it came through (the HTTP
 * API or the event bus), and the {@link SamplingSpec} it runs with: the bounds of the sampling
 * parameters, the {@code max_tokens} defaults, the chat roles and template, a served model. A
 * refusal is an {@link ApiError} worded the same for both front ends; each passes the names its
 * clients know the parameters by.
 */
final class CompletionRules {

  static final int MAX_STOP_SEQUENCES = 4;

  private final ProxyOptions options;

  CompletionRules(ProxyOptions options) {
    this.options = options;
  }

  static String requireModel(String model) {
    if (model == null || model.isEmpty()) {
      throw ApiError.invalid("model", "you must provide a model parameter");
    }
    return model;
  }

  /**
   * Refuses a model that {@code backend} does not serve: as UNAVAILABLE (HTTP 503 with
   * {@code Retry-After}) while it has no instance of a model it expects to serve
   * ({@link CompletionBackend#expects}), a passing outage; else 404 the way OpenAI answers for a
   * model it does not have.
   */
  static void requireServed(CompletionBackend backend, String model) {
    if (backend.models().contains(model)) {
      return;
    }
    if (backend.expects(model)) {
      throw new CompletionException(Failure.UNAVAILABLE, "The model `" + model + "` has no "
          + "prefill or decode instance available right now; retry later.");
    }
    throw ApiError.modelNotFound(model);
  }

  static double temperature(String param, double value) {
    return inRange(param, value, 0.0, true, 2.0);
  }

  static double topP(String param, double value) {
    return inRange(param, value, 0.0, false, 1.0);
  }

  /** {@code top_k}; -1 and 0 (as in vLLM) both turn it off. */
  static int topK(String param, long value) {
    return inRange(param, value, -1, Integer.MAX_VALUE);
  }

  static int maxTokens(String param, long value) {
    return inRange(param, value, 1, Integer.MAX_VALUE);
  }

  /** vLLM's {@code min_tokens}; at most {@code max_tokens}, checked with the sampling. */
  static int minTokens(String param, long value) {
    return inRange(param, value, 0, Integer.MAX_VALUE);
  }

  /** vLLM's {@code min_p}; 0 turns it off. */
  static double minP(String param, double value) {
    return inRange(param, value, 0.0, true, 1.0);
  }

  /** A number in [min, max] ({@code minInclusive} tells whether min itself is allowed). */
  static double inRange(String param, double value, double min, boolean minInclusive,
      double max) {
    if (!Double.isFinite(value)) {
      throw ApiError.invalid(param, param + " must be a finite number");
    }
    if (minInclusive ? value < min : value <= min) {
      throw ApiError.invalid(param, format(value) + " is " + (minInclusive
          ? "less than the minimum of " : "less than or equal to the exclusive minimum of ")
          + format(min) + " - '" + param + "'");
    }
    if (value > max) {
      throw ApiError.invalid(param, format(value) + " is greater than the maximum of "
          + format(max) + " - '" + param + "'");
    }
    return value;
  }

  static int inRange(String param, long value, int min, int max) {
    if (value < min) {
      throw ApiError.invalid(param, value + " is less than the minimum of " + min + " - '"
          + param + "'");
    }
    if (value > max) {
      throw ApiError.invalid(param, value + " is greater than the maximum of " + max + " - '"
          + param + "'");
    }
    return (int) value;
  }

  static List<String> stop(String param, List<String> sequences) {
    if (sequences.size() > MAX_STOP_SEQUENCES) {
      throw ApiError.invalid(param, param + " accepts at most " + MAX_STOP_SEQUENCES
          + " sequences, got " + sequences.size());
    }
    if (sequences.contains("")) {
      throw ApiError.invalid(param, param + " sequences must not be empty strings");
    }
    return sequences;
  }

  /** A token id (null when the client sent no number). */
  static int tokenId(String param, Long id) {
    if (id == null || id < 0 || id > Integer.MAX_VALUE) {
      throw ApiError.invalid(param, "token ids must be non-negative integers");
    }
    return id.intValue();
  }

  /** A message's role; OpenAI's {@code developer} is the system. */
  static String chatRole(String param, String role) {
    if (role == null) {
      throw ApiError.invalid(param, "each message needs a role");
    }
    String known = "developer".equals(role) ? ChatMessage.SYSTEM : role;
    if (!known.equals(ChatMessage.SYSTEM) && !known.equals(ChatMessage.USER)
        && !known.equals(ChatMessage.ASSISTANT)) {
      throw ApiError.unsupported(param, "Unsupported role '" + role
          + "'; supported roles are system, user and assistant");
    }
    return known;
  }

  /** The content of a message that has none: only an assistant's may be left out. */
  static String absentContent(String param, boolean assistant) {
    if (!assistant) {
      throw ApiError.invalid(param, "message content must not be null");
    }
    return "";
  }

  /**
   * The prompt of a conversation with {@code model}: the user speaks last, and the configured
   * chat template renders it, else the one the model's instances announce
   * ({@link CompletionBackend#chatTemplate}), else {@link ChatTemplate#LLAMA2}.
   */
  String chatPrompt(List<ChatMessage> messages, String model, CompletionBackend backend) {
    if (!messages.get(messages.size() - 1).role().equals(ChatMessage.USER)) {
      throw ApiError.invalid("messages", "the last message must be from the user");
    }
    String name = options.getChatTemplate() != null ? options.getChatTemplate()
        : backend.chatTemplate(model).orElse(ChatTemplate.LLAMA2);
    ChatTemplate template;
    try {
      template = ChatTemplate.forName(name);
    } catch (IllegalArgumentException e) {
      throw new ApiError(500, ApiError.INTERNAL, "model " + model + " announces a chat template "
          + "this proxy does not have: " + e.getMessage(), null, null);
    }
    try {
      return template.render(messages);
    } catch (IllegalArgumentException e) {
      throw ApiError.invalid("messages", e.getMessage());
    }
  }

  /**
   * The sampling of a checked request: {@code maxTokens} null takes the default of its kind
   * (which the context may cut short, where a {@code max_tokens} the client asked for that does
   * not fit is refused), a seed left out is drawn per request.
   */
  SamplingSpec sampling(ParsedRequest.Kind kind, Integer maxTokens, double temperature, int topK,
      double topP, double minP, Long seed, List<Integer> stopTokenIds, List<String> stop,
      boolean ignoreEos, int minTokens) {
    int max = maxTokens != null ? maxTokens : kind == ParsedRequest.Kind.CHAT
        ? options.getChatMaxTokens() : options.getCompletionMaxTokens();
    if (minTokens > max) {
      throw ApiError.invalid("min_tokens", "min_tokens (" + minTokens + ") must be less than or "
          + "equal to max_tokens (" + max + ")");
    }
    return new SamplingSpec((float) temperature, Math.max(0, topK), (float) topP,
        seed != null ? seed : ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE, max,
        stopTokenIds, stop, ignoreEos, maxTokens != null, minTokens, (float) minP);
  }

  private static String format(double value) {
    return value == Math.rint(value) && Math.abs(value) < 1e15 ? String.valueOf((long) value)
        : String.valueOf(value);
  }
}
