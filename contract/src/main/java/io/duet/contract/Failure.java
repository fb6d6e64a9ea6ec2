package io.duet.contract;

import io.vertx.core.eventbus.ReplyException;
import io.vertx.core.eventbus.ReplyFailure;

/**
 * Why a request failed, as carried by event-bus replies ({@code message.fail(code, text)}) and
 * by the last event of a failed stream. The codes are this contract's own; what a failure
 * means to a particular client (an HTTP status, an OpenAI error type) is that client's mapping.
 */
public enum Failure {
  /** The request itself is invalid; sending it again will not help. */
  BAD_REQUEST(1),
  /** The prompt, or the prompt and the tokens asked for, do not fit the model's context. */
  CONTEXT_LENGTH(2),
  /** The prefill and decode instances hold KV of different layouts. */
  INCOMPATIBLE_KV(3),
  /** The requester cancelled it. */
  CANCELLED(4),
  /** A fault inside the service. */
  INTERNAL(5),
  /** Moving the KV from the prefill to the decode instance failed. */
  KV_TRANSFER(6),
  /** The instance is at its limits; another one, or a later attempt, may take it. */
  OVERLOADED(7),
  /** No instance can serve it (none there, or it is shutting down). */
  UNAVAILABLE(8),
  /** It took longer than its deadline. */
  TIMEOUT(9),
  /** The requester did not present a valid API key. */
  UNAUTHORIZED(10),
  /**
   * The prefill instance that holds the KV could not be reached, did not answer the pull, or its
   * connection broke before the KV arrived: it died or is cut off. Unlike other
   * {@link #KV_TRANSFER} failures, prefilling the prompt again on another instance may succeed.
   */
  KV_UNREACHABLE(11);

  private final int code;

  Failure(int code) {
    this.code = code;
  }

  /** The failure code on the wire. */
  public int code() {
    return code;
  }

  /**
   * The failure a reply exception stands for: its own code when it is one of ours, TIMEOUT when
   * no reply came, UNAVAILABLE when nobody listens at the address any more or the recipient went
   * away with the request still queued ({@link #discarded}).
   */
  public static Failure of(Throwable error) {
    if (error instanceof ReplyException reply) {
      if (discarded(reply)) {
        return UNAVAILABLE;
      }
      if (reply.failureType() == ReplyFailure.TIMEOUT) {
        return TIMEOUT;
      }
      if (reply.failureType() == ReplyFailure.RECIPIENT_FAILURE) {
        for (Failure f : values()) {
          if (f.code == reply.failureCode()) {
            return f;
          }
        }
      }
      return UNAVAILABLE;
    }
    return INTERNAL;
  }

  /**
   * Whether the recipient never handled the request: its consumer was unregistered (an instance
   * stopping) while the request waited in its queue. Vert.x answers that as a TIMEOUT whose
   * message says the request was discarded; unlike a real timeout, nothing of the request ran.
   */
  public static boolean discarded(ReplyException reply) {
    return reply.failureType() == ReplyFailure.TIMEOUT && reply.getMessage() != null
        && reply.getMessage().startsWith("Discarded the request");
  }

  /** The failure named {@code name} on the wire; INTERNAL for a name this build does not know. */
  public static Failure parse(String name) {
    for (Failure f : values()) {
      if (f.name().equals(name)) {
        return f;
      }
    }
    return INTERNAL;
  }

  /** The text to fail a message with: {@code NAME: message}, so the name survives the trip. */
  public String message(String text) {
    return name() + ": " + text;
  }

  private static String nameIn(String message) {
    if (message == null) {
      return "";
    }
    int colon = message.indexOf(':');
    return colon < 0 ? "" : message.substring(0, colon);
  }

  /** The human part of a failure message made by {@link #message}. */
  public static String text(Throwable error) {
    String message = error.getMessage() == null ? error.toString() : error.getMessage();
    String name = nameIn(message);
    for (Failure f : values()) {
      if (f.name().equals(name)) {
        return message.substring(name.length() + 1).trim();
      }
    }
    return message;
  }
}
