package io.duet.decode.impl;

import io.duet.engine.Engine;
import java.util.function.Consumer;

/**
 * The stepping of a rank whose expert-parallel group spans several JVMs: the group's ranks in
 * this JVM step together under {@code local} (a {@link LockstepStepping}), and since no
 * coordinator sees the other JVMs' ranks, a rank also steps when one of them has begun a step
 * this rank has not joined ({@link Engine#expertPeerWaiting}); the arrival of that rank's first
 * frame wakes it. A step consumes every frame of its own, so this adds no empty steps: each
 * step of a rank of another JVM is joined exactly once.
 *
 * <p>When a peer's JVM stops or fails, its connection's end wakes the rank too, and the step
 * fails with the reason; from then on every step of the group fails at once (see
 * {@link Engine#expertGroupFailure}), each request with that reason, and the rank tells
 * {@code onBroken} once, before its next step.
 */
public final class NetworkedGroupStepping implements RankStepping {

  private final RankStepping local;
  private final Engine engine;
  private final Consumer<String> onBroken;
  /** Whether onBroken was told; only the engine thread reads and writes it. */
  private boolean toldBroken;

  /**
   * @param onBroken told once, with the reason, when the group has broken; on the engine
   *     thread, so it must return at once
   */
  public NetworkedGroupStepping(RankStepping local, Engine engine, Consumer<String> onBroken) {
    this.local = local;
    this.engine = engine;
    this.onBroken = onBroken;
  }

  @Override
  public boolean beforeStep(boolean hasWork) {
    String failure = engine.expertGroupFailure();
    if (failure != null && !toldBroken) {
      toldBroken = true;
      onBroken.accept(failure);
    }
    // A broken group still steps for the requests that come: each fails at once with the reason.
    return local.beforeStep(hasWork || engine.expertPeerWaiting());
  }

  @Override
  public void start(Runnable wake) {
    engine.onExpertPeerWaiting(wake);
    local.start(wake);
  }

  @Override
  public void leave() {
    local.leave();
  }

  @Override
  public boolean othersBusy() {
    return local.othersBusy();
  }
}
