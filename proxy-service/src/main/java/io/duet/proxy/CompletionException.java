package io.duet.proxy;

import io.duet.cluster.protocol.Failure;
import java.util.Objects;

/**
 * A completion that could not run or failed. The {@link Failure} decides the HTTP status and the
 * OpenAI error {@code type} the client gets; the message is the human text.
 */
public class CompletionException extends RuntimeException {

  private final Failure failure;

  public CompletionException(Failure failure, String message) {
    super(message);
    this.failure = Objects.requireNonNull(failure, "failure");
  }

  public CompletionException(Failure failure, String message, Throwable cause) {
    super(message, cause);
    this.failure = Objects.requireNonNull(failure, "failure");
  }

  public Failure failure() {
    return failure;
  }
}
