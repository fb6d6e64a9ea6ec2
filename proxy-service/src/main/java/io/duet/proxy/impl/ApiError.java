package io.duet.proxy.impl;

import io.duet.contract.Failure;
import io.duet.proxy.CompletionException;
import io.vertx.core.json.JsonObject;

/**
 * The one failure type of the HTTP layer: an HTTP status and the fields of an OpenAI error body
 * ({@code {"error":{"message","type","param","code"}}}). Every error the API answers with,
 * whether found while parsing, by the router or by the cluster, becomes one of these in
 * {@link #from(Throwable)} and is written by {@link #toJson()}.
 */
final class ApiError extends RuntimeException {

  static final String INVALID_REQUEST = "invalid_request_error";
  static final String INTERNAL = "internal_error";
  static final String CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded";
  static final String SERVICE_UNAVAILABLE = "service_unavailable";
  /**
   * How long an OVERLOADED client is asked to wait before it retries: a slot frees as soon as
   * any running request ends, so a short wait; a refusal costs the proxy almost nothing.
   */
  static final int RETRY_AFTER_SECONDS = 1;
  /**
   * How long a client is asked to wait when no instance serves its model: about the time a
   * restarted instance takes to join and announce itself.
   */
  static final int UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

  private final int status;
  private final String type;
  private final String param;
  private final String code;
  private final int retryAfterSeconds;

  ApiError(int status, String type, String message, String param, String code) {
    this(status, type, message, param, code, 0);
  }

  private ApiError(int status, String type, String message, String param, String code,
      int retryAfterSeconds) {
    super(message, null, false, false);
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** 400 about one request parameter. */
  static ApiError invalid(String param, String message) {
    return new ApiError(400, INVALID_REQUEST, message, param, null);
  }

  /** 400 for a parameter whose value is valid in OpenAI's API but not served here. */
  static ApiError unsupported(String param, String message) {
    return new ApiError(400, INVALID_REQUEST, message, param, null);
  }

  /** 400 for a parameter of the wrong JSON type. */
  static ApiError wrongType(String param, String expected, Object value) {
    return invalid(param, "Invalid type for '" + param + "': expected " + expected + ", but got "
        + jsonType(value) + " instead.");
  }

  /** 404 the way OpenAI answers for a model it does not serve. */
  static ApiError modelNotFound(String model) {
    return new ApiError(404, INVALID_REQUEST, "The model `" + model
        + "` does not exist or is not served right now.", null, "model_not_found");
  }

  /** 415 for a body that is not JSON (a form, a file upload). */
  static ApiError unsupportedMediaType(String contentType) {
    return new ApiError(415, INVALID_REQUEST, "Unsupported Content-Type '" + contentType
        + "': send the request as a JSON body (Content-Type: application/json).", null,
        "unsupported_media_type");
  }

  /**
   * The error a cluster {@link Failure} is answered with: its HTTP status and OpenAI type.
   * OVERLOADED (the proxy's queue is full, or the instances refuse work) is 429 with a
   * {@code Retry-After}, as servers at their limits answer and OpenAI clients retry.
   */
  static ApiError of(Failure failure, String message) {
    return switch (failure) {
      case BAD_REQUEST -> new ApiError(400, INVALID_REQUEST, message, null, null);
      case CONTEXT_LENGTH -> new ApiError(400, INVALID_REQUEST, message, null,
          CONTEXT_LENGTH_EXCEEDED);
      case UNAUTHORIZED -> new ApiError(401, INVALID_REQUEST, message, null, "invalid_api_key");
      case INCOMPATIBLE_KV -> new ApiError(409, "incompatible_kv_layout", message, null, null);
      case CANCELLED -> new ApiError(499, "cancelled", message, null, null);
      case INTERNAL -> new ApiError(500, INTERNAL, message, null, null);
      case KV_TRANSFER, KV_UNREACHABLE -> new ApiError(502, "kv_transfer_failed", message, null, null);
      case OVERLOADED -> new ApiError(429, "overloaded", message, null, null,
          RETRY_AFTER_SECONDS);
      case UNAVAILABLE -> new ApiError(503, SERVICE_UNAVAILABLE, message, null, null,
          UNAVAILABLE_RETRY_AFTER_SECONDS);
      case TIMEOUT -> new ApiError(504, "timeout", message, null, null);
    };
  }

  /**
   * The error to answer with for {@code error}: itself when it is one already; a cluster
   * {@link Failure} keeps its code as the status and its type; anything else is a 500.
   */
  static ApiError from(Throwable error) {
    if (error instanceof ApiError api) {
      return api;
    }
    if (error instanceof CompletionException completion) {
      return of(completion.failure(), completion.getMessage());
    }
    return new ApiError(500, INTERNAL, "Internal error: "
        + (error == null || error.getMessage() == null ? String.valueOf(error) : error.getMessage()),
        null, null);
  }

  /** The error for an HTTP status the router failed a request with (no route, body too big...). */
  static ApiError fromStatus(int status, String method, String path, long maxBodyBytes) {
    return switch (status) {
      case 404 -> new ApiError(404, INVALID_REQUEST, "Not found: " + method + " " + path, null,
          null);
      case 405 -> new ApiError(405, INVALID_REQUEST, "Method " + method + " is not allowed on "
          + path, null, null);
      case 413 -> new ApiError(413, INVALID_REQUEST, "The request body exceeds the limit of "
          + maxBodyBytes + " bytes.", null, null);
      case 414 -> new ApiError(414, INVALID_REQUEST, "The request line is too long.", null, null);
      case 431 -> new ApiError(431, INVALID_REQUEST, "The request headers are too large.", null,
          null);
      default -> status >= 400 && status < 500
          ? new ApiError(status, INVALID_REQUEST, "Bad request (HTTP " + status + ")", null, null)
          : new ApiError(500, INTERNAL, "Internal error", null, null);
    };
  }

  int status() {
    return status;
  }

  String type() {
    return type;
  }

  String param() {
    return param;
  }

  String code() {
    return code;
  }

  /** The {@code Retry-After} to answer with; 0 for none. */
  int retryAfterSeconds() {
    return retryAfterSeconds;
  }

  JsonObject toJson() {
    return new JsonObject().put("error", new JsonObject().put("message", getMessage())
        .put("type", type).put("param", param).put("code", code));
  }

  private static String jsonType(Object value) {
    if (value instanceof String) {
      return "a string";
    }
    if (value instanceof Boolean) {
      return "a boolean";
    }
    if (value instanceof Number) {
      return "a number";
    }
    if (value instanceof JsonObject) {
      return "an object";
    }
    if (value instanceof io.vertx.core.json.JsonArray) {
      return "an array";
    }
    return "null";
  }
}
