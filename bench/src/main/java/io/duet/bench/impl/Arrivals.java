package io.duet.bench.impl;

import java.util.Arrays;
import java.util.Random;

/**
 * When each request of an open-loop run is due, as offsets from the start of the run: at a
 * fixed rate, either evenly spaced or as a Poisson process (exponential gaps) from a seed, so
 * that two runs with the same settings send at the same moments.
 */
public final class Arrivals {

  /** How the gaps between requests are drawn. */
  public enum Shape {
    /** every gap is 1 / rate */
    CONSTANT,
    /** exponential gaps of mean 1 / rate */
    POISSON
  }

  private Arrivals() {
  }

  /** The first {@code count} arrivals, in nanoseconds from the start. */
  public static long[] first(Shape shape, double perSecond, long seed, int count) {
    requireRate(perSecond);
    Gaps gaps = new Gaps(shape, perSecond, seed);
    long[] offsets = new long[count];
    double at = 0;
    for (int i = 0; i < count; i++) {
      offsets[i] = Math.round(at);
      at += gaps.next();
    }
    return offsets;
  }

  /** Every arrival before {@code seconds}, in nanoseconds from the start. */
  public static long[] within(Shape shape, double perSecond, long seed, double seconds) {
    requireRate(perSecond);
    Gaps gaps = new Gaps(shape, perSecond, seed);
    long[] offsets = new long[16];
    int count = 0;
    double end = seconds * 1e9;
    for (double at = 0; at < end; at += gaps.next()) {
      if (count == offsets.length) {
        offsets = Arrays.copyOf(offsets, count * 2);
      }
      offsets[count++] = Math.round(at);
    }
    return Arrays.copyOf(offsets, count);
  }

  private static void requireRate(double perSecond) {
    if (!(perSecond > 0) || Double.isInfinite(perSecond)) {
      throw new IllegalArgumentException("the request rate must be a positive number, was "
          + perSecond);
    }
  }

  private static final class Gaps {
    final Shape shape;
    final double meanNanos;
    final Random random;

    Gaps(Shape shape, double perSecond, long seed) {
      this.shape = shape;
      this.meanNanos = 1e9 / perSecond;
      this.random = new Random(seed);
    }

    double next() {
      return shape == Shape.CONSTANT ? meanNanos
          : -Math.log(1 - random.nextDouble()) * meanNanos;
    }
  }
}
