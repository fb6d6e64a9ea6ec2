package io.duet.deploy.impl;

/**
 * What keeps a command of {@code duet.jar} from doing its work, said to its user as it is: the
 * message is the whole report (no stack trace is printed).
 */
public final class LaunchFailure extends RuntimeException {

  private static final long serialVersionUID = 1L;

  public LaunchFailure(String message) {
    super(message);
  }
}
