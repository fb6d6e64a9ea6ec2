package io.duet.kv;

import io.duet.engine.Sequence;

/**
 * Prefilled KV held for a decode instance. It ends once (released, cancelled or expired), but
 * its blocks are freed only when no pull is reading them any more, and, for a lease taken while
 * its KV is computed, only once the engine is done with it: a block freed mid-pull (or
 * mid-step) could be reused by the next prefill and sent to the decoder as someone else's KV.
 */
final class Lease {

  final String transferId;
  final String requestId;
  final Sequence sequence;
  /** Set once, before the lease is published to other threads. */
  KvStreamWriter export;
  /** The pull key handed out with the lease (base64url); null when derived from the secret. */
  final String pullKey;
  long expiresAtMillis;
  long timerId;
  private int pulls;
  private boolean ended;
  /** The connection that pulled the lease, once one did: it alone may release it. */
  private Object puller;
  /** Whether the engine still computes the KV (and holds the blocks in its step). */
  private boolean computing;
  /** What the stream ends with once computed; null for KV computed before it was leased. */
  private FirstToken first;
  /** Counts progress, completion and ending, so that a waiter misses none of them. */
  private long changes;
  private Runnable waiter;
  /** Whether it ended because the first token ended the request: nothing failed. */
  private boolean endedAtFirstToken;

  Lease(String transferId, String requestId, Sequence sequence, String pullKey,
      boolean computing) {
    this.transferId = transferId;
    this.requestId = requestId;
    this.sequence = sequence;
    this.pullKey = pullKey;
    this.computing = computing;
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
    return ended && pulls == 0 && !computing;
  }

  /** Ends the lease; true when the caller must free the blocks now (nothing holds them). */
  boolean end() {
    Runnable wake;
    boolean free;
    synchronized (this) {
      if (ended) {
        return false;
      }
      ended = true;
      free = pulls == 0 && !computing;
      wake = changed();
    }
    run(wake);
    return free;
  }

  /**
   * The engine is done with the KV: {@code value} is what the stream ends with (null when it
   * will not be served). True when the caller must now free the blocks (the lease ended and no
   * pull holds them).
   */
  boolean computed(FirstToken value) {
    Runnable wake;
    boolean free;
    synchronized (this) {
      computing = false;
      first = value;
      free = ended && pulls == 0;
      wake = changed();
    }
    run(wake);
    return free;
  }

  /** More of the KV is computed. Engine thread. */
  void progressed() {
    Runnable wake;
    synchronized (this) {
      wake = changed();
    }
    run(wake);
  }

  private Runnable changed() {
    changes++;
    Runnable wake = waiter;
    waiter = null;
    return wake;
  }

  private static void run(Runnable wake) {
    if (wake != null) {
      wake.run();
    }
  }

  synchronized long changes() {
    return changes;
  }

  /**
   * Runs {@code wake} (once, on the thread of the change) at the next progress, completion or
   * end, or at once if one came since {@code seen} ({@link #changes}).
   */
  void awaitChange(long seen, Runnable wake) {
    synchronized (this) {
      if (changes == seen) {
        waiter = wake;
        return;
      }
    }
    wake.run();
  }

  synchronized void markEndedAtFirstToken() {
    endedAtFirstToken = true;
  }

  synchronized boolean endedAtFirstToken() {
    return endedAtFirstToken;
  }

  synchronized boolean isComputing() {
    return computing;
  }

  synchronized FirstToken first() {
    return first;
  }

  synchronized boolean isEnded() {
    return ended;
  }
}
