package io.duet.decode.impl;

/**
 * How the data-parallel ranks of one decode instance step, each on its own engine thread: the
 * seam where expert parallelism plugs in. Each rank has its own object; those of ranks that
 * depend on each other are views of one coordinator ({@link LockstepStepping}).
 *
 * <p>{@link #INDEPENDENT}, for dense models: the ranks share nothing but read-only weights, so
 * each steps whenever its own batch has work and idles otherwise. Expert parallelism (routed
 * experts spread over the ranks, DeepSeek-V3) exchanges activations between all the ranks in
 * every step, so they must step in lockstep: {@link LockstepStepping} waits in
 * {@link #beforeStep} until every rank has arrived for the round, and has each rank step while
 * any rank has work, a rank with an empty batch included, so that no exchange misses a rank.
 */
public interface RankStepping {

  /** Each rank on its own: it steps exactly when its batch has work. */
  RankStepping INDEPENDENT = hasWork -> hasWork;

  /**
   * Called by a rank's engine thread before each step, with whether its own batch has work; may
   * block until the rank may step.
   *
   * @return whether the rank steps now (its batch, possibly empty); false lets its engine thread
   *     wait for the next command
   */
  boolean beforeStep(boolean hasWork);

  /**
   * The rank's engine thread has started; {@code wake}, callable from any thread, makes it call
   * {@link #beforeStep} soon even while it waits for commands.
   */
  default void start(Runnable wake) {
  }

  /** The rank stops stepping for good (it is closing); nothing waits for it any more. */
  default void leave() {
  }

  /**
   * Whether a rank this one steps with still has work, as of its last step: such a rank's
   * experts are still needed, so this one must not go (drain) yet.
   */
  default boolean othersBusy() {
    return false;
  }
}
