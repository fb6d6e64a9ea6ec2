package io.duet.contract;

import io.vertx.core.eventbus.Message;
import java.util.Objects;

/**
 * A request that a service refused or could not complete, with the {@link Failure} that tells
 * the caller (and finally the HTTP client) what kind of failure it was.
 */
public class ServiceException extends RuntimeException {

  private final Failure failure;

  public ServiceException(Failure failure, String message) {
    super(message);
    this.failure = Objects.requireNonNull(failure, "failure");
  }

  public ServiceException(Failure failure, String message, Throwable cause) {
    super(message, cause);
    this.failure = Objects.requireNonNull(failure, "failure");
  }

  public Failure failure() {
    return failure;
  }

  /**
   * Answers a request with a failure: the error's own {@link Failure} when it is a
   * ServiceException, INTERNAL otherwise. The code and the name survive the event bus (see
   * {@link Failure#of} and {@link Failure#text}).
   */
  public static void failReply(Message<?> message, Throwable error) {
    Failure kind = error instanceof ServiceException service ? service.failure() : Failure.INTERNAL;
    message.fail(kind.code(), kind.message(String.valueOf(error.getMessage())));
  }
}
