package io.duet.proxy;

import io.duet.contract.Failure;
import io.duet.contract.ServiceException;

/**
 * A completion that could not run or failed. The {@link Failure} decides the HTTP status and the
 * OpenAI error {@code type} the client gets; the message is the human text.
 */
public class CompletionException extends ServiceException {

  public CompletionException(Failure failure, String message) {
    super(failure, message);
  }

  public CompletionException(Failure failure, String message, Throwable cause) {
    super(failure, message, cause);
  }
}
