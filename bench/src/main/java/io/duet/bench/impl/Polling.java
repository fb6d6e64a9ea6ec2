package io.duet.bench.impl;

import java.util.concurrent.TimeUnit;

/** Polls a live server until something is seen, with a pause between polls and a deadline. */
public final class Polling {

  /** One poll: true once what it waits for is seen. */
  public interface Check {
    boolean seen() throws Exception;
  }

  /** When it was first seen ({@link System#nanoTime}) and after how many polls. */
  public record Seen(long nanos, int polls) {
  }

  private Polling() {
  }

  /**
   * Polls {@code check} every {@code pauseMillis} until it is seen.
   *
   * @param deadlineNanos when to give up ({@link System#nanoTime})
   * @param failure what went wrong when it is not seen by then
   * @throws IllegalStateException with {@code failure} after the deadline
   */
  public static Seen until(Check check, long pauseMillis, long deadlineNanos, String failure)
      throws Exception {
    int polls = 1;
    while (!check.seen()) {
      if (System.nanoTime() > deadlineNanos) {
        throw new IllegalStateException(failure);
      }
      TimeUnit.MILLISECONDS.sleep(pauseMillis);
      polls++;
    }
    return new Seen(System.nanoTime(), polls);
  }
}
