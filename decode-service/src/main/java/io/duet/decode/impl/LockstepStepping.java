package io.duet.decode.impl;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ranks of a group step together, round by round: once any rank arrives with work, every
 * rank that has {@linkplain RankStepping#start started} and not {@linkplain RankStepping#leave
 * left} steps in that round (those without work on an empty batch), and none steps again before
 * all have arrived for the next round. While no rank has work they idle without waiting for
 * each other; a rank arriving with work wakes the rest. It knows nothing of what the ranks
 * compute, so any engine whose ranks exchange data in every step (expert parallelism, or a
 * simulated engine) can step under it.
 *
 * <p>No rank waits for one that is gone: a rank that leaves completes the round it was awaited
 * in, and one that starts late is woken into the round under way. A rank whose step fails
 * arrives for the next round as any other.
 */
public final class LockstepStepping {

  private static final Logger LOG = LoggerFactory.getLogger(LockstepStepping.class);
  /** How often a rank waiting for a round wakes the ranks that have not arrived again. */
  private static final long REWAKE_MILLIS = 1000;

  // Guarded by this.
  private final Map<Integer, Runnable> members = new HashMap<>();
  private final Set<Integer> arrived = new HashSet<>();
  private final Set<Integer> busy = new HashSet<>();
  private boolean roundHasWork;
  private long round;

  /** Rank {@code rank}'s view. */
  public RankStepping rank(int rank) {
    return new RankStepping() {
      @Override
      public boolean beforeStep(boolean hasWork) {
        return arrive(rank, hasWork);
      }

      @Override
      public void start(Runnable wake) {
        join(rank, wake);
      }

      @Override
      public void leave() {
        LockstepStepping.this.leave(rank);
      }

      @Override
      public boolean othersBusy() {
        return busyBesides(rank);
      }
    };
  }

  /** Rounds completed so far. */
  public synchronized long rounds() {
    return round;
  }

  private synchronized boolean arrive(int rank, boolean hasWork) {
    if (hasWork) {
      busy.add(rank);
    } else {
      busy.remove(rank);
    }
    if (!hasWork && !roundHasWork) {
      return false;
    }
    arrived.add(rank);
    if (!roundHasWork) {
      roundHasWork = true;
      wakeLaggards();
    }
    if (arrived.containsAll(members.keySet())) {
      completeRound();
      return true;
    }
    long awaited = round;
    while (round == awaited) {
      try {
        wait(REWAKE_MILLIS);
      } catch (InterruptedException e) {
        // The rank is closing: it steps no more and nobody waits for it.
        Thread.currentThread().interrupt();
        leave(rank);
        return false;
      }
      if (round == awaited) {
        wakeLaggards();
      }
    }
    return true;
  }

  private synchronized void join(int rank, Runnable wake) {
    members.put(rank, wake);
    if (roundHasWork) {
      wake.run();
    }
  }

  private synchronized void leave(int rank) {
    members.remove(rank);
    arrived.remove(rank);
    busy.remove(rank);
    LOG.debug("rank {} left the lockstep; {} remain", rank, members.size());
    if (roundHasWork && arrived.containsAll(members.keySet())) {
      completeRound();
    }
  }

  private synchronized boolean busyBesides(int rank) {
    return busy.stream().anyMatch(r -> r != rank) || (roundHasWork && !arrived.contains(rank));
  }

  private void completeRound() {
    arrived.clear();
    roundHasWork = false;
    round++;
    notifyAll();
  }

  private void wakeLaggards() {
    members.forEach((rank, wake) -> {
      if (!arrived.contains(rank)) {
        wake.run();
      }
    });
  }
}
