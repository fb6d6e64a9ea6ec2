package io.duet.contract;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A completion asked for by an event-bus client: what {@link Addresses#COMPLETIONS} takes. The
 * proxy that gets it runs it as it runs an HTTP request (same routing, limits and metrics).
 *
 * <h2>Message flow</h2>
 * <ol>
 *   <li>The client registers a consumer on {@code streamAddress} (an address only it consumes,
 *   such as {@link Addresses#clientStream}) and waits until the registration is complete, so that
 *   the cluster can route events to it.</li>
 *   <li>It sends this request with {@code eventBus.request(Addresses.COMPLETIONS, toJson())}. The
 *   proxy answers with a {@link CompletionAccepted} naming the request id and the proxy's control
 *   address for it, or fails the request (read with {@link Failure#of} and {@link Failure#text}):
 *   {@link Failure#BAD_REQUEST} naming what is wrong with it, {@link Failure#UNAUTHORIZED} when
 *   the proxy requires an API key and this one is missing or wrong, or {@link Failure#OVERLOADED}
 *   when the proxy's queue of requests waiting for a decode slot is full (retry later).</li>
 *   <li>After that reply, the proxy sends the tokens to {@code streamAddress} as
 *   {@link DecodeEvent}s numbered from 0: at most {@code initialCredits} of them, then one more
 *   for each credit the client grants by sending a {@link StreamCredit} to the control address.
 *   Every event takes a credit, the last one included; while the client has none left, the
 *   tokens are coalesced into its next event. The last event has a {@code finishReason} or a
 *   {@code failure} (a {@link Failure} name).</li>
 *   <li>A {@link Cancel} sent with {@code eventBus.request} to the control address stops the
 *   request and frees its KV on the prefill and decode instances. Its reply is the stream's last
 *   event: failure {@code CANCELLED}, or the end the request had already reached but could not
 *   send for want of credit. A request that has sent its last event is no longer known there, and
 *   a cancel of it fails with {@link Failure#BAD_REQUEST}.</li>
 * </ol>
 *
 * <p>The proxy takes the client for gone, and cancels its request, when an event cannot be
 * delivered because nothing consumes {@code streamAddress} any more (the client unregistered
 * it, or its JVM left the cluster), and when the client has used up its credits and grants none
 * for the proxy's stall timeout (30 s unless configured otherwise).
 *
 * <p>Exactly one of {@code prompt}, {@code promptTokens} and {@code messages} is given.
 *
 * @param requestId the request's id, unique in the cluster (a random UUID, say); null to let
 *     the proxy choose one, which the accepted reply names
 * @param model the served model name, as HTTP clients give it
 * @param prompt the prompt text; the prefill instance tokenizes it (with BOS)
 * @param promptTokens token ids to prefill instead of a text (BOS first when the model wants it);
 *     empty when not given
 * @param messages a chat conversation for the proxy's chat template, the user's message last;
 *     empty when not given
 * @param sampling how to sample; {@code maxTokens} 0 asks for the proxy's default, as an HTTP
 *     request without {@code max_tokens} does (16 for a prompt, 4096 for a chat)
 * @param streamAddress where the {@link DecodeEvent}s go
 * @param initialCredits events the proxy may send before the client grants more, at least 1
 * @param apiKey the proxy's API key when it requires one, else null
 */
public record CompletionRequest(String requestId, String model, String prompt, int[] promptTokens,
    List<Message> messages, SamplingSpec sampling, String streamAddress, int initialCredits,
    String apiKey) {

  /**
   * One message of a chat conversation.
   *
   * @param role {@code system}, {@code user} or {@code assistant}
   */
  public record Message(String role, String content) {

    public JsonObject toJson() {
      return new JsonObject().put("role", role).put("content", content);
    }

    public static Message fromJson(JsonObject json) {
      return new Message(json.getString("role"), json.getString("content"));
    }
  }

  public CompletionRequest {
    promptTokens = promptTokens == null ? new int[0] : promptTokens;
    messages = messages == null ? List.of() : List.copyOf(messages);
  }

  /** A completion of a prompt text, with an id the proxy chooses. */
  public static CompletionRequest ofPrompt(String model, String prompt, SamplingSpec sampling,
      String streamAddress, int initialCredits) {
    return new CompletionRequest(null, model, Objects.requireNonNull(prompt, "prompt"), null, null,
        sampling, streamAddress, initialCredits, null);
  }

  /** A completion of prompt token ids, with an id the proxy chooses. */
  public static CompletionRequest ofTokens(String model, int[] promptTokens,
      SamplingSpec sampling, String streamAddress, int initialCredits) {
    return new CompletionRequest(null, model, null, promptTokens, null, sampling, streamAddress,
        initialCredits, null);
  }

  /** A chat completion, with an id the proxy chooses. */
  public static CompletionRequest ofChat(String model, List<Message> messages,
      SamplingSpec sampling, String streamAddress, int initialCredits) {
    return new CompletionRequest(null, model, null, null, messages, sampling, streamAddress,
        initialCredits, null);
  }

  public CompletionRequest withRequestId(String id) {
    return new CompletionRequest(id, model, prompt, promptTokens, messages, sampling,
        streamAddress, initialCredits, apiKey);
  }

  public CompletionRequest withApiKey(String key) {
    return new CompletionRequest(requestId, model, prompt, promptTokens, messages, sampling,
        streamAddress, initialCredits, key);
  }

  public JsonObject toJson() {
    JsonArray chat = new JsonArray();
    messages.forEach(message -> chat.add(message.toJson()));
    return Messages.envelope().put("requestId", requestId).put("model", model)
        .put("prompt", prompt).put("promptTokens", Messages.ints(promptTokens))
        .put("messages", chat).put("sampling", sampling == null ? null : sampling.toJson())
        .put("streamAddress", streamAddress).put("initialCredits", initialCredits)
        .put("apiKey", apiKey);
  }

  /**
   * Reads a request; fields left out read as absent (null, empty or 0), for the proxy to refuse
   * with a message naming them.
   *
   * @throws IllegalArgumentException for another contract version
   */
  public static CompletionRequest fromJson(JsonObject json) {
    Messages.checked(json, "completion request");
    List<Message> chat = new ArrayList<>();
    JsonArray messages = json.getJsonArray("messages");
    if (messages != null) {
      for (int i = 0; i < messages.size(); i++) {
        chat.add(Message.fromJson(messages.getJsonObject(i)));
      }
    }
    JsonObject sampling = json.getJsonObject("sampling");
    return new CompletionRequest(json.getString("requestId"), json.getString("model"),
        json.getString("prompt"), Messages.ints(json.getJsonArray("promptTokens")), chat,
        sampling == null ? null : SamplingSpec.fromJson(sampling),
        json.getString("streamAddress"), json.getInteger("initialCredits", 0),
        json.getString("apiKey"));
  }
}
