package io.duet.proxy.impl;

import io.duet.proxy.CompletionBackend;
import io.duet.contract.CompletionRequest;
import io.duet.contract.SamplingSpec;
import io.duet.proxy.ChatMessage;
import io.duet.proxy.CompletionJob;
import java.util.ArrayList;
import java.util.List;

/**
 * Checks an event-bus {@link CompletionRequest} the way {@link RequestParser} checks an HTTP
 * body, by the same {@link CompletionRules} under the names of the request's fields, and makes
 * its {@link CompletionJob}. A refusal is an {@link ApiError} naming the field.
 */
final class EventBusRequests {

  /** Longest request id a client may choose: the id names its work on every instance. */
  static final int MAX_REQUEST_ID_LENGTH = 128;

  private final CompletionRules rules;

  EventBusRequests(CompletionRules rules) {
    this.rules = rules;
  }

  /** @param backend the cluster the request goes to, which knows the model's chat template */
  CompletionJob job(CompletionRequest request, CompletionBackend backend) {
    String model = CompletionRules.requireModel(request.model());
    boolean text = request.prompt() != null;
    boolean tokens = request.promptTokens().length > 0;
    boolean chat = !request.messages().isEmpty();
    int prompts = (text ? 1 : 0) + (tokens ? 1 : 0) + (chat ? 1 : 0);
    if (prompts != 1) {
      throw ApiError.invalid("prompt", prompts == 0
          ? "you must provide a prompt, promptTokens or messages"
          : "give only one of prompt, promptTokens and messages");
    }
    ParsedRequest.Kind kind = chat ? ParsedRequest.Kind.CHAT : ParsedRequest.Kind.COMPLETION;
    String requestId = requestId(request.requestId(), kind);
    String prompt = chat ? rules.chatPrompt(chatMessages(request.messages()), model, backend) : request.prompt();
    List<Integer> promptTokens = new ArrayList<>();
    for (int token : request.promptTokens()) {
      promptTokens.add(CompletionRules.tokenId("promptTokens", (long) token));
    }
    SamplingSpec sampling = sampling(kind, request.sampling());
    if (request.streamAddress() == null || request.streamAddress().isBlank()) {
      throw ApiError.invalid("streamAddress", "you must provide the address the events go to");
    }
    if (request.initialCredits() < 1) {
      throw ApiError.invalid("initialCredits", "initialCredits must be at least 1, got "
          + request.initialCredits());
    }
    return new CompletionJob(requestId, model, prompt, promptTokens, sampling);
  }

  private static String requestId(String chosen, ParsedRequest.Kind kind) {
    if (chosen == null) {
      return kind.newRequestId();
    }
    if (chosen.isBlank() || chosen.length() > MAX_REQUEST_ID_LENGTH) {
      throw ApiError.invalid("requestId", "a request id is 1 to " + MAX_REQUEST_ID_LENGTH
          + " characters, not all blank; leave it out to have one chosen");
    }
    return chosen;
  }

  private static List<ChatMessage> chatMessages(List<CompletionRequest.Message> messages) {
    List<ChatMessage> chat = new ArrayList<>(messages.size());
    for (int i = 0; i < messages.size(); i++) {
      String param = "messages[" + i + "]";
      CompletionRequest.Message message = messages.get(i);
      String role = CompletionRules.chatRole(param + ".role", message.role());
      String content = message.content() != null ? message.content()
          : CompletionRules.absentContent(param + ".content", role.equals(ChatMessage.ASSISTANT));
      chat.add(new ChatMessage(role, content));
    }
    return chat;
  }

  private SamplingSpec sampling(ParsedRequest.Kind kind, SamplingSpec given) {
    if (given == null) {
      throw ApiError.invalid("sampling", "you must provide the sampling settings");
    }
    Integer maxTokens = given.maxTokens() == 0 ? null
        : CompletionRules.maxTokens("sampling.maxTokens", given.maxTokens());
    double temperature = CompletionRules.temperature("sampling.temperature",
        given.temperature());
    double topP = CompletionRules.topP("sampling.topP", given.topP());
    int topK = CompletionRules.topK("sampling.topK", given.topK());
    List<String> stop = CompletionRules.stop("sampling.stop", given.stop());
    for (Integer id : given.stopTokenIds()) {
      CompletionRules.tokenId("sampling.stopTokenIds", (long) id);
    }
    double minP = CompletionRules.minP("sampling.minP", given.minP());
    int minTokens = CompletionRules.minTokens("sampling.minTokens", given.minTokens());
    return rules.sampling(kind, maxTokens, temperature, topK, topP, minP, given.seed(),
        given.stopTokenIds(), stop, given.ignoreEos(), minTokens);
  }
}
