package io.duet.kv;

/** The peer sent something the KV transfer protocol does not allow. */
public class KvProtocolException extends RuntimeException {
  public KvProtocolException(String message) {
    super(message);
  }
}
