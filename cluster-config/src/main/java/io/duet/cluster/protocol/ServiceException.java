package io.duet.cluster.protocol;

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
}
