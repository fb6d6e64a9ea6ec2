package io.duet.engine.spi;

/**
 * An exchange of an expert-parallel group could not complete: a rank of the group failed in it,
 * left, or did not come in time. The step that needed it fails; an in-JVM group is usable again
 * once every rank has seen the failure, a group spanning JVMs is not.
 */
public final class ExpertExchangeException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  public ExpertExchangeException(String message) {
    super(message);
  }
}
