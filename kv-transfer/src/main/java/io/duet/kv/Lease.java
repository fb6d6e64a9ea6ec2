package io.duet.kv;

import io.duet.engine.Sequence;

/**
 * Prefilled KV held for a decode instance. It ends once (released, cancelled or expired), but
 * its blocks are freed only when no pull is reading them any more: a block freed mid-pull could
 * be reused by the next prefill and sent to the decoder as someone else's KV.
 */
final class Lease {

  final String transferId;
  final String requestId;
  final Sequence sequence;
  final KvStreamWriter export;
  /** The pull key handed out with the lease (base64url); null when derived from the secret. */
  final String pullKey;
  long expiresAtMillis;
  long timerId;
  private int pulls;
  private boolean ended;
  /** The connection that pulled the lease, once one did: it alone may release it. */
  private Object puller;

  Lease(String transferId, String requestId, Sequence sequence, KvStreamWriter export,
      String pullKey) {
    this.transferId = transferId;
    this.requestId = requestId;
    this.sequence = sequence;
    this.export = export;
    this.pullKey = pullKey;
  }

  /**
   * Pins the blocks for the pull of {@code by}; false when the lease already ended or was
   * pulled before: a lease is served once.
   */
  synchronized boolean pin(Object by) {
    if (ended || puller != null) {
      return false;
    }
    puller = by;
    pulls++;
    return true;
  }

  synchronized boolean pulledBy(Object connection) {
    return puller != null && puller == connection;
  }

  /** Unpins after a pull; true when the caller must now free the blocks. */
  synchronized boolean unpin() {
    pulls--;
    return ended && pulls == 0;
  }

  /** Ends the lease; true when the caller must free the blocks now (no pull holds them). */
  synchronized boolean end() {
    if (ended) {
      return false;
    }
    ended = true;
    return pulls == 0;
  }

  synchronized boolean isEnded() {
    return ended;
  }
}
