package io.duet.decode.impl;

/**
 * How the data-parallel ranks of one decode instance step, each on its own engine thread: the
 * seam where expert parallelism plugs in. One object serves all the ranks of an instance.
 *
 * <p>{@link #INDEPENDENT}, for dense models: the ranks share nothing but read-only weights, so
 * each steps whenever its own batch has work and idles otherwise. Expert parallelism (routed
 * experts spread over the ranks, DeepSeek-V3) exchanges activations between all the ranks in
 * every step, so they must step in lockstep: a lockstep implementation waits in
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
}
