package io.duet.decode.impl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Ranks under one {@link LockstepStepping}, each a thread that, like a decode rank's engine
 * thread, waits for commands when it may not step and asks again when woken.
 */
@Timeout(30)
class LockstepSteppingTest {

  private final LockstepStepping lockstep = new LockstepStepping();
  private final List<Rank> ranks = new ArrayList<>();

  /** A rank with {@code work} steps of its own to run; counts every step it takes. */
  private final class Rank {
    final RankStepping stepping;
    final BlockingQueue<Runnable> commands = new LinkedBlockingQueue<>();
    final AtomicInteger work = new AtomicInteger();
    final AtomicInteger steps = new AtomicInteger();
    final AtomicInteger emptySteps = new AtomicInteger();
    final Thread thread;
    volatile boolean failNextStep;

    Rank(int rank) {
      stepping = lockstep.rank(rank);
      thread = new Thread(this::loop, "rank-" + rank);
    }

    void start() {
      stepping.start(() -> commands.add(() -> { }));
      thread.start();
    }

    /** Gives the rank {@code more} steps of work and wakes it, as a join command would. */
    void give(int more) {
      work.addAndGet(more);
      commands.add(() -> { });
    }

    private void loop() {
      boolean busy = false;
      while (!Thread.currentThread().isInterrupted()) {
        try {
          Runnable command = busy ? commands.poll() : commands.poll(100, TimeUnit.MILLISECONDS);
          while (command != null) {
            command.run();
            command = commands.poll();
          }
        } catch (InterruptedException e) {
          return;
        }
        busy = stepping.beforeStep(work.get() > 0);
        if (busy) {
          steps.incrementAndGet();
          if (work.get() > 0) {
            if (failNextStep) {
              // a step that fails: its work is dropped, as a failed decode step drops its batch
              failNextStep = false;
              work.set(0);
              continue;
            }
            work.decrementAndGet();
          } else {
            emptySteps.incrementAndGet();
          }
        }
      }
    }

    void stop() throws InterruptedException {
      stepping.leave();
      thread.interrupt();
      thread.join();
    }
  }

  private Rank rank(int index) {
    Rank rank = new Rank(index);
    ranks.add(rank);
    rank.start();
    return rank;
  }

  @AfterEach
  void stopAll() throws InterruptedException {
    for (Rank rank : ranks) {
      rank.stop();
    }
  }

  private static void awaitTrue(java.util.function.BooleanSupplier condition)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (!condition.getAsBoolean()) {
      assertTrue(System.nanoTime() < deadline, "condition not met within 20 s");
      Thread.sleep(5);
    }
  }

  @Test
  void everyRankStepsInEveryRoundInWhichAnyHasWork() throws InterruptedException {
    Rank a = rank(0);
    Rank b = rank(1);
    Rank c = rank(2);
    a.give(7);
    b.give(3);
    awaitTrue(() -> a.work.get() == 0 && b.work.get() == 0 && lockstep.rounds() == 7);
    Thread.sleep(300);
    assertEquals(7, lockstep.rounds(), "no round without work");
    for (Rank rank : List.of(a, b, c)) {
      assertEquals(7, rank.steps.get(), "rank steps");
    }
    assertEquals(4, b.emptySteps.get());
    assertEquals(7, c.emptySteps.get(), "a rank without work steps empty in every round");
  }

  @Test
  void aRankThatLeavesIsNoLongerWaitedFor() throws InterruptedException {
    Rank a = rank(0);
    Rank b = rank(1);
    a.give(3);
    awaitTrue(() -> a.work.get() == 0);
    b.stop();
    ranks.remove(b);
    int before = a.steps.get();
    a.give(5);
    awaitTrue(() -> a.work.get() == 0);
    assertEquals(before + 5, a.steps.get());
    assertFalse(a.stepping.othersBusy());
  }

  @Test
  void aRankThatStartsLateIsWokenIntoTheRoundUnderWay() throws InterruptedException {
    // Rank 1 is a member before its thread runs: rank 0's round waits for it.
    Rank a = rank(0);
    Rank late = new Rank(1);
    CountDownLatch started = new CountDownLatch(1);
    late.stepping.start(() -> {
      late.commands.add(() -> { });
      started.countDown();
    });
    a.give(2);
    assertTrue(started.await(10, TimeUnit.SECONDS), "the late rank was woken");
    assertEquals(0, lockstep.rounds(), "the round waits for every member");
    assertTrue(a.stepping.othersBusy() || late.stepping.othersBusy());
    late.thread.start();
    ranks.add(late);
    // The late rank's second empty step may come just after rank 0's last one.
    awaitTrue(() -> a.work.get() == 0 && late.emptySteps.get() == 2);
    assertEquals(2, lockstep.rounds(), "two rounds, each with both ranks");
  }

  @Test
  void aFailedStepLeavesTheGroupStepping() throws InterruptedException {
    Rank a = rank(0);
    Rank b = rank(1);
    b.failNextStep = true;
    b.give(10);
    a.give(4);
    awaitTrue(() -> a.work.get() == 0);
    assertEquals(4, lockstep.rounds(), "b's failure ended its work after one round");
    b.give(2);
    // Rank a's step of the last round may come just after rank b's.
    awaitTrue(() -> b.work.get() == 0 && a.steps.get() == 6);
    assertEquals(6, lockstep.rounds());
  }

  @Test
  void aBusyRankKeepsTheOthersFromDraining() throws InterruptedException {
    Rank a = rank(0);
    Rank b = rank(1);
    assertFalse(b.stepping.othersBusy());
    a.give(1_000_000);
    awaitTrue(() -> b.stepping.othersBusy());
    assertFalse(a.stepping.othersBusy(), "b has no work of its own");
    a.work.set(0);
    awaitTrue(() -> !b.stepping.othersBusy());
  }
}
