package io.duet.proxy.it;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;

/** The figures an integration test measures: printed as they come, and all again at the end. */
final class Figures {

  private final String testName;
  private final List<String> figures = new CopyOnWriteArrayList<>();

  Figures(String testName) {
    this.testName = testName;
  }

  /** Records {@code format} with the milliseconds from {@code since} to now. */
  void millisSince(String format, long since) {
    millis(format, since, System.nanoTime());
  }

  /** Records {@code format} with the milliseconds from {@code since} to {@code until}. */
  void millis(String format, long since, long until) {
    note(String.format(Locale.ROOT, format, (until - since) / 1_000_000));
  }

  /** Records a figure written out by the test. */
  void note(String figure) {
    System.out.println("[" + testName + "] " + figure);
    figures.add(figure);
  }

  /** Prints every figure recorded. */
  void print() {
    System.out.println("[" + testName + "] figures:\n  " + String.join("\n  ", figures));
  }
}
