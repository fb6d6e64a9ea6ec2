package io.duet.cluster.protocol;

import io.vertx.core.eventbus.ReplyException;
import io.vertx.core.eventbus.ReplyFailure;

/**
 * Failure codes carried by event-bus replies ({@code message.fail(code, text)}), chosen to map
 * one to one onto the HTTP status the proxy answers with.
 */
public enum Failure {
  BAD_REQUEST(400, "invalid_request_error"),
  CONTEXT_LENGTH(400, "invalid_request_error"),
  INCOMPATIBLE_KV(409, "incompatible_kv_layout"),
  CANCELLED(499, "cancelled"),
  INTERNAL(500, "internal_error"),
  KV_TRANSFER(502, "kv_transfer_failed"),
  OVERLOADED(503, "overloaded"),
  UNAVAILABLE(503, "service_unavailable"),
  TIMEOUT(504, "timeout");

  private final int code;
  private final String type;

  Failure(int code, String type) {
    this.code = code;
    this.type = type;
  }

  /** The failure code on the wire (also the HTTP status). */
  public int code() {
    return code;
  }

  /** The OpenAI-style error {@code type}. */
  public String type() {
    return type;
  }

  /**
   * The failure a reply exception stands for: its own code when it is one of ours, TIMEOUT when
   * no reply came, UNAVAILABLE when nobody listens at the address any more.
   */
  public static Failure of(Throwable error) {
    if (error instanceof ReplyException reply) {
      if (reply.failureType() == ReplyFailure.TIMEOUT) {
        return TIMEOUT;
      }
      if (reply.failureType() == ReplyFailure.RECIPIENT_FAILURE) {
        for (Failure f : values()) {
          if (f.code == reply.failureCode() && f.name().equals(nameIn(reply.getMessage()))) {
            return f;
          }
        }
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
