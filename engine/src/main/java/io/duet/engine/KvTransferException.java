package io.duet.engine;

/**
 * A KV stream that cannot be imported. Whatever the import had allocated is freed before this
 * is thrown.
 */
public class KvTransferException extends RuntimeException {

  /** What went wrong, for callers that map failures to protocol errors or metrics. */
  public enum Reason {
    /** The stream was made by an engine with other weights or another cache layout. */
    FINGERPRINT_MISMATCH,
    /** The stream ended early. */
    TRUNCATED,
    /** A checksum did not match: the bytes were damaged on the way. */
    CORRUPTED,
    /** The bytes are not a KV stream of a version this engine reads. */
    MALFORMED
  }

  private final Reason reason;

  public KvTransferException(Reason reason, String message) {
    super(reason + ": " + message);
    this.reason = reason;
  }

  public Reason reason() {
    return reason;
  }
}
