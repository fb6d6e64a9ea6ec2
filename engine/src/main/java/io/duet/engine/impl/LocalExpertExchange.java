package io.duet.engine.impl;

import io.duet.engine.spi.ExpertExchange;
import io.duet.engine.spi.ExpertExchangeException;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

/**
 * The all-to-all of an expert-parallel group whose ranks are engines of one JVM: every rank
 * writes its mail to the others into shared memory, and two barriers per exchange order it (all
 * mail is in; every rank has written its results). A rank in {@link ExpertExchange#finishStep}
 * arrives at the first barrier as done; when every rank arrives done, the step is over for all.
 *
 * <p>Failures never leave a rank waiting: a rank whose serving throws, a rank that leaves, or a
 * barrier some rank does not reach within the timeout breaks the exchange, and every rank fails
 * its exchange at once with an {@link ExpertExchangeException}. Once every rank has seen the
 * failure the group starts afresh; a rank that left breaks it for good.
 */
public final class LocalExpertExchange {

  /** How long a barrier waits for a rank that neither comes nor fails nor leaves. */
  public static final long DEFAULT_TIMEOUT_MILLIS = 60_000;

  private final int ranks;
  private final long timeoutNanos;
  /** {@code inboxes[d][s]}: the mail from rank s to rank d. */
  private final ExpertExchange.Mail[][] inboxes;
  private final Rank[] views;

  // Guarded by this.
  private int arrived;
  private boolean allDoneSoFar = true;
  private boolean lastAllDone;
  private long generation;
  private String broken;
  private final boolean[] sawBreak;
  private int sawBreakCount;
  private final boolean[] left;

  /** A group of {@code ranks} ranks. */
  public LocalExpertExchange(int ranks, long timeoutMillis) {
    if (ranks < 1) {
      throw new IllegalArgumentException("an expert-parallel group has at least one rank");
    }
    this.ranks = ranks;
    this.timeoutNanos = TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
    this.inboxes = new ExpertExchange.Mail[ranks][ranks];
    for (ExpertExchange.Mail[] inbox : inboxes) {
      Arrays.setAll(inbox, s -> new ExpertExchange.Mail());
    }
    this.sawBreak = new boolean[ranks];
    this.left = new boolean[ranks];
    this.views = new Rank[ranks];
    Arrays.setAll(views, Rank::new);
  }

  /** Rank {@code rank}'s end of the exchange. */
  public ExpertExchange rank(int rank) {
    return views[rank];
  }

  /**
   * Arrives at a barrier as {@code rank}, done with its step or not.
   *
   * @return whether every rank arrived done
   */
  private synchronized boolean await(int rank, boolean done) {
    failIfBroken(rank);
    long gen = generation;
    allDoneSoFar &= done;
    if (++arrived == ranks) {
      lastAllDone = allDoneSoFar;
      allDoneSoFar = true;
      arrived = 0;
      generation++;
      notifyAll();
      return lastAllDone;
    }
    long deadline = System.nanoTime() + timeoutNanos;
    while (generation == gen && broken == null) {
      long remaining = deadline - System.nanoTime();
      if (remaining <= 0) {
        breakGroup(rank, "a rank of the expert-parallel group did not reach the exchange within "
            + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms");
        break;
      }
      try {
        TimeUnit.NANOSECONDS.timedWait(this, remaining);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        breakGroup(rank, "rank " + rank + " was interrupted in the expert exchange");
      }
    }
    if (generation == gen) {
      failIfBroken(rank);
    }
    return lastAllDone;
  }

  private void failIfBroken(int rank) {
    if (broken == null) {
      return;
    }
    String reason = broken;
    if (!sawBreak[rank]) {
      sawBreak[rank] = true;
      if (++sawBreakCount == ranks) {
        restart();
      }
    }
    throw new ExpertExchangeException(reason);
  }

  /** Breaks the exchange under way; {@code rank} has seen it. */
  private synchronized void breakGroup(int rank, String reason) {
    if (broken == null) {
      broken = reason;
      notifyAll();
    }
    if (!sawBreak[rank]) {
      sawBreak[rank] = true;
      if (++sawBreakCount == ranks) {
        restart();
      }
    }
  }

  /** Every rank has seen the failure: the next exchange starts clean, unless a rank left. */
  private void restart() {
    for (boolean gone : left) {
      if (gone) {
        return;
      }
    }
    broken = null;
    Arrays.fill(sawBreak, false);
    sawBreakCount = 0;
    arrived = 0;
    allDoneSoFar = true;
    generation++;
  }

  private synchronized void leave(int rank) {
    left[rank] = true;
    broken = "rank " + rank + " of the expert-parallel group has closed: its experts are gone";
    notifyAll();
  }

  private final class Rank implements ExpertExchange {

    private final int rank;
    private final Mail[] outbox = new Mail[ranks];
    private volatile long nanos;

    Rank(int rank) {
      this.rank = rank;
      for (int d = 0; d < ranks; d++) {
        outbox[d] = inboxes[d][rank];
      }
    }

    @Override
    public int ranks() {
      return ranks;
    }

    @Override
    public int rank() {
      return rank;
    }

    @Override
    public Mail outbox(int destination) {
      return outbox[destination];
    }

    @Override
    public void exchange(Server server) {
      long start = System.nanoTime();
      try {
        await(rank, false);
        serve(server);
        await(rank, false);
      } finally {
        nanos += System.nanoTime() - start;
      }
    }

    @Override
    public void finishStep(Server server) {
      long start = System.nanoTime();
      try {
        for (Mail mail : outbox) {
          mail.clear(-1, mail.width());
        }
        while (!await(rank, true)) {
          serve(server);
          await(rank, true);
        }
      } finally {
        nanos += System.nanoTime() - start;
      }
    }

    private void serve(Server server) {
      try {
        server.serve(inboxes[rank]);
      } catch (RuntimeException | Error e) {
        breakGroup(rank, "rank " + rank + " failed serving its experts: " + e);
        throw e;
      }
    }

    @Override
    public long exchangeNanos() {
      return nanos;
    }

    @Override
    public void leave() {
      LocalExpertExchange.this.leave(rank);
    }
  }
}
