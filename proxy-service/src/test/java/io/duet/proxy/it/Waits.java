package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.fail;

import io.duet.service.ServiceTests;
import java.time.Duration;
import java.util.function.BooleanSupplier;

/** Waiting for a condition of the child JVMs, polled as their status pages can bear. */
final class Waits {

  private static final Duration POLL = Duration.ofMillis(20);

  private Waits() {
  }

  /**
   * Polls {@code condition} until it holds and returns when it did ({@link System#nanoTime}); fails
   * the test naming {@code what} when it does not within {@code timeout}.
   */
  static long until(String what, BooleanSupplier condition, Duration timeout) {
    if (!ServiceTests.holdsWithin(timeout, POLL, condition)) {
      fail("timed out after " + timeout.toSeconds() + " s waiting for " + what);
    }
    return System.nanoTime();
  }
}
