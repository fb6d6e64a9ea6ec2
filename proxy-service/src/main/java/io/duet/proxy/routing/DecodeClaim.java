package io.duet.proxy.routing;

import java.util.Objects;

/**
 * What {@link Routing#claimDecode} made of a request that needs a decode slot. A request holds a
 * slot on its target from a {@link Outcome#PLACED} claim, or from the call of its
 * {@code onSlot} after a {@link Outcome#WAITING} one, until it gives the slot back with
 * {@link Routing#releaseDecode}.
 */
public final class DecodeClaim {

  /** How the claim went. */
  public enum Outcome {
    /** The request has a slot on {@link #target()}. */
    PLACED,
    /**
     * Every compatible target holds as many of this proxy's requests as the cap allows: the
     * request waits in the proxy's queue, and its {@code onSlot} is called with its target when
     * it gets a slot, unless it {@linkplain #withdraw() withdraws} first.
     */
    WAITING,
    /** Every compatible target is at the cap and the queue is full: the request is refused. */
    QUEUE_FULL,
    /**
     * No live target is compatible with the request, or the policy refused them all while none
     * was at the cap.
     */
    NO_TARGET
  }

  static final DecodeClaim QUEUE_FULL = new DecodeClaim(Outcome.QUEUE_FULL, null, null);
  static final DecodeClaim NO_TARGET = new DecodeClaim(Outcome.NO_TARGET, null, null);

  private final Outcome outcome;
  private final DecodeTarget target;
  private final DecodeSlots.Waiting waiting;

  private DecodeClaim(Outcome outcome, DecodeTarget target, DecodeSlots.Waiting waiting) {
    this.outcome = outcome;
    this.target = target;
    this.waiting = waiting;
  }

  static DecodeClaim placed(DecodeTarget target) {
    return new DecodeClaim(Outcome.PLACED, Objects.requireNonNull(target), null);
  }

  static DecodeClaim waiting(DecodeSlots.Waiting waiting) {
    return new DecodeClaim(Outcome.WAITING, null, waiting);
  }

  public Outcome outcome() {
    return outcome;
  }

  /** The target of a {@link Outcome#PLACED} claim; null otherwise. */
  public DecodeTarget target() {
    return target;
  }

  /**
   * Takes a {@link Outcome#WAITING} request out of the queue. Thread-safe.
   *
   * @return true when it was still waiting: its {@code onSlot} will not be called; false when it
   *     got a slot already (its {@code onSlot} call is on its way, and the slot is the
   *     request's to release) or the claim is not a waiting one
   */
  public boolean withdraw() {
    return waiting != null && waiting.withdraw();
  }
}
