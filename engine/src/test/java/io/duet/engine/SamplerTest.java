package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SamplerTest {

  private static SamplingParams sampling(float temperature, int topK, float topP, long seed) {
    return SamplingParams.greedy(16).withTemperature(temperature).withTopK(topK).withTopP(topP)
        .withSeed(seed);
  }

  /** Draws {@code n} tokens, each from a fresh copy of {@code logits} (sampling overwrites it). */
  private static int[] draw(Sampler sampler, float[] logits, int n) {
    int[] tokens = new int[n];
    for (int i = 0; i < n; i++) {
      tokens[i] = sampler.sample(logits.clone());
    }
    return tokens;
  }

  private static int[] counts(int[] tokens, int vocab) {
    int[] counts = new int[vocab];
    for (int token : tokens) {
      counts[token]++;
    }
    return counts;
  }

  /** Logits whose softmax is exactly (up to rounding) the given probabilities. */
  private static float[] logitsOf(double... probabilities) {
    float[] logits = new float[probabilities.length];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) Math.log(probabilities[i]);
    }
    return logits;
  }

  private static double[] softmax(float[] logits, double temperature) {
    double max = Double.NEGATIVE_INFINITY;
    for (float l : logits) {
      max = Math.max(max, l / temperature);
    }
    double[] p = new double[logits.length];
    double sum = 0;
    for (int i = 0; i < p.length; i++) {
      p[i] = Math.exp(logits[i] / temperature - max);
      sum += p[i];
    }
    for (int i = 0; i < p.length; i++) {
      p[i] /= sum;
    }
    return p;
  }

  /** Pearson's chi-square statistic of observed counts against expected probabilities. */
  private static double chiSquare(int[] counts, double[] probabilities, int draws) {
    double chi = 0;
    for (int i = 0; i < counts.length; i++) {
      double expected = probabilities[i] * draws;
      chi += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    return chi;
  }

  // ---------------------------------------------------------------------------------- greedy

  @Test
  void greedyPicksTheLargestLogit() {
    Sampler sampler = new Sampler(SamplingParams.greedy(8), 6);
    assertEquals(3, sampler.sample(new float[] {0.1f, -2f, 1.5f, 7f, 6.99f, 0f}));
    assertEquals(0, sampler.sample(new float[] {9f, -2f, 1.5f, 7f, 6.99f, 0f}));
    assertEquals(5, sampler.sample(new float[] {-9f, -8f, -7f, -6f, -5f, -4f}));
  }

  @Test
  void greedyBreaksTiesTowardsTheLowestIndex() {
    Sampler sampler = new Sampler(SamplingParams.greedy(8), 6);
    assertEquals(1, sampler.sample(new float[] {0f, 3f, 3f, -1f, 3f, 2f}));
    assertEquals(0, sampler.sample(new float[] {-1f, -1f, -1f, -1f, -1f, -1f}));
    assertEquals(4, sampler.sample(new float[] {0f, 0f, 0f, 0f, 5f, 5f}));
  }

  @Test
  void greedyOnRandomLogitsMatchesAnIndependentArgmax() {
    Random random = new Random(3);
    Sampler sampler = new Sampler(SamplingParams.greedy(8), 50);
    for (int round = 0; round < 200; round++) {
      float[] logits = new float[50];
      for (int i = 0; i < logits.length; i++) {
        logits[i] = random.nextInt(20) - 10; // small integers: plenty of ties
      }
      int expected = 0;
      for (int i = 0; i < logits.length; i++) {
        if (logits[i] > logits[expected]) {
          expected = i;
        }
      }
      assertEquals(expected, sampler.sample(logits), Arrays.toString(logits));
    }
  }

  // ------------------------------------------------------------------------ reproducibility

  private static final float[] SPREAD = {0.5f, 1.2f, -0.3f, 0.9f, 0.1f, 1.0f, -1.0f, 0.7f};

  @Test
  void theSameSeedGivesTheSameTokens() {
    SamplingParams params = sampling(1f, 0, 1f, 42);
    int[] first = draw(new Sampler(params, SPREAD.length), SPREAD, 500);
    int[] second = draw(new Sampler(params, SPREAD.length), SPREAD, 500);
    assertArrayEquals(first, second);
    assertTrue(Arrays.stream(first).distinct().count() > 1, "the draws should vary");
  }

  @Test
  void differentSeedsGiveDifferentTokens() {
    int[] base = draw(new Sampler(sampling(1f, 0, 1f, 42), SPREAD.length), SPREAD, 200);
    for (long seed : new long[] {1, 43, 1234567, -5}) {
      int[] other = draw(new Sampler(sampling(1f, 0, 1f, seed), SPREAD.length), SPREAD, 200);
      assertFalse(Arrays.equals(base, other), "seed " + seed + " drew the same as seed 42");
    }
  }

  @ParameterizedTest(name = "topK={0}")
  @ValueSource(ints = {0, 3})
  void aSamplerRestoredFromAnothersStateDrawsTheSameNextTokens(int topK) {
    SamplingParams params = sampling(0.9f, topK, 0.95f, 7);
    Sampler original = new Sampler(params, SPREAD.length);
    draw(original, SPREAD, 37);
    long saved = original.state();
    assertNotEquals(7L, saved, "drawing advances the generator");

    Sampler restored = new Sampler(params, saved, SPREAD.length);
    assertEquals(saved, restored.state());
    assertArrayEquals(draw(original, SPREAD, 200), draw(restored, SPREAD, 200));
    assertEquals(original.state(), restored.state());
  }

  // ---------------------------------------------------------------------------------- top-k

  @ParameterizedTest(name = "temperature={0}")
  @ValueSource(floats = {0.05f, 0.5f, 1f, 2f, 10f})
  void topKOneAlwaysPicksTheArgmax(float temperature) {
    Random random = new Random(Float.floatToIntBits(temperature));
    for (float topP : new float[] {1f, 0.9f, 0.3f}) {
      Sampler sampler = new Sampler(sampling(temperature, 1, topP, 99), 40);
      for (int round = 0; round < 200; round++) {
        float[] logits = new float[40];
        for (int i = 0; i < logits.length; i++) {
          logits[i] = random.nextFloat() * 4f - 2f;
        }
        int argmax = random.nextInt(40);
        logits[argmax] = 2.5f; // clearly the largest, even divided by the temperature
        assertEquals(argmax, sampler.sample(logits), "top-p " + topP);
      }
    }
  }

  /** The five most likely tokens sit at scattered ids; the other 15 still hold 40% mass. */
  private static final double[] TOP5_DISTRIBUTION = new double[20];
  private static final Set<Integer> TOP5 = Set.of(2, 5, 11, 13, 19);

  static {
    for (int i = 0; i < 20; i++) {
      TOP5_DISTRIBUTION[i] = TOP5.contains(i) ? 0.12 : 0.04;
    }
  }

  @Test
  void topKNeverPicksOutsideTheKMostLikely() {
    float[] logits = logitsOf(TOP5_DISTRIBUTION);
    int[] tokens = draw(new Sampler(sampling(1f, 5, 1f, 2024), 20), logits, 2000);
    int[] counts = counts(tokens, 20);
    for (int i = 0; i < 20; i++) {
      if (TOP5.contains(i)) {
        assertTrue(counts[i] > 300, "token " + i + " drawn " + counts[i] + " times of ~400");
      } else {
        assertEquals(0, counts[i], "token " + i + " is not among the top 5");
      }
    }

    // Without top-k, the distribution really does put mass outside the top 5.
    int[] unrestricted = counts(draw(new Sampler(sampling(1f, 0, 1f, 2024), 20), logits, 2000), 20);
    int outside = 0;
    for (int i = 0; i < 20; i++) {
      outside += TOP5.contains(i) ? 0 : unrestricted[i];
    }
    assertTrue(outside > 600, "expected about 800 draws outside the top 5, got " + outside);
  }

  @Test
  void topKRenormalisesOverTheKeptTokens() {
    // Top-2 of {0.5, 0.3, 0.15, 0.05}: tokens 0 and 1 with 0.625 and 0.375.
    float[] logits = logitsOf(0.5, 0.3, 0.15, 0.05);
    int draws = 4000;
    int[] counts = counts(draw(new Sampler(sampling(1f, 2, 1f, 5), 4), logits, draws), 4);
    assertEquals(0, counts[2] + counts[3]);
    double chi = chiSquare(new int[] {counts[0], counts[1]}, new double[] {0.625, 0.375}, draws);
    assertTrue(chi < 15, "chi-square " + chi + " for counts " + Arrays.toString(counts));
  }

  // ---------------------------------------------------------------------------------- top-p

  @Test
  void topPBelowTheLargestProbabilityAlwaysPicksThatToken() {
    double[] probabilities = {0.05, 0.1, 0.05, 0.1, 0.6, 0.1};
    float[] logits = logitsOf(probabilities);
    int[] tokens = draw(new Sampler(sampling(1f, 0, 0.5f, 77), 6), logits, 2000);
    for (int token : tokens) {
      assertEquals(4, token);
    }
    // With top-k on top, the same.
    tokens = draw(new Sampler(sampling(1f, 3, 0.5f, 77), 6), logits, 500);
    for (int token : tokens) {
      assertEquals(4, token);
    }
  }

  @Test
  void topPSamplesFromTheNucleusInProportion() {
    // Sorted: 0.5, 0.3 (cumulative 0.8 > 0.7 ends the nucleus), 0.15, 0.05.
    float[] logits = logitsOf(0.15, 0.5, 0.05, 0.3);
    int draws = 4000;
    int[] counts = counts(draw(new Sampler(sampling(1f, 0, 0.7f, 11), 4), logits, draws), 4);
    assertEquals(0, counts[0] + counts[2], Arrays.toString(counts));
    double chi = chiSquare(new int[] {counts[1], counts[3]}, new double[] {0.625, 0.375}, draws);
    assertTrue(chi < 15, "chi-square " + chi + " for counts " + Arrays.toString(counts));
  }

  @ParameterizedTest(name = "topP={0}")
  @ValueSource(floats = {0f, 1f, 1.5f, -0.5f})
  void topPOutsideZeroOneIsDisabled(float topP) {
    float[] logits = logitsOf(TOP5_DISTRIBUTION);
    int[] plain = draw(new Sampler(sampling(1f, 0, 1f, 8), 20), logits, 300);
    assertArrayEquals(plain, draw(new Sampler(sampling(1f, 0, topP, 8), 20), logits, 300));
  }

  // ---------------------------------------------------------------------------- temperature

  @ParameterizedTest(name = "temperature={0}")
  @ValueSource(floats = {0.8f, 1f, 2f})
  void sampledFrequenciesFollowTheSoftmaxProbabilities(float temperature) {
    float[] logits = {1.0f, 0.5f, 0f, -0.5f, 2.0f, -1.0f};
    double[] expected = softmax(logits, temperature);
    int draws = 20_000;
    int[] counts = counts(draw(new Sampler(sampling(temperature, 0, 1f, 123), 6), logits, draws),
        6);
    // 5 degrees of freedom: P(chi-square > 30) is about 1.5e-5 for a correct sampler, while an
    // ignored temperature (or a wrong one) puts the statistic in the hundreds.
    double chi = chiSquare(counts, expected, draws);
    assertTrue(chi < 30, "chi-square " + chi + " for counts " + Arrays.toString(counts)
        + " against " + Arrays.toString(expected));
  }

  @Test
  void aLowerTemperatureSharpensTheDistribution() {
    float[] logits = {1.0f, 0.5f, 0f, -0.5f, 2.0f, -1.0f};
    int cold = counts(draw(new Sampler(sampling(0.3f, 0, 1f, 1), 6), logits, 2000), 6)[4];
    int hot = counts(draw(new Sampler(sampling(3f, 0, 1f, 1), 6), logits, 2000), 6)[4];
    assertTrue(cold > 1800 && hot < 800, "argmax drawn " + cold + " (cold) vs " + hot + " (hot)");
  }

  // ------------------------------------------------------------------------ SamplingParams

  @Test
  void samplingParamsRejectsInvalidValues() {
    SamplingParams valid = SamplingParams.greedy(16);
    assertThrows(IllegalArgumentException.class, () -> valid.withTemperature(-0.1f));
    assertThrows(IllegalArgumentException.class, () -> valid.withTemperature(Float.NaN));
    assertThrows(IllegalArgumentException.class,
        () -> valid.withTemperature(Float.POSITIVE_INFINITY));
    assertThrows(IllegalArgumentException.class, () -> valid.withTopP(Float.NaN));
    assertThrows(IllegalArgumentException.class, () -> valid.withTopK(-1));
    assertThrows(IllegalArgumentException.class, () -> valid.withMaxTokens(0));
    assertThrows(IllegalArgumentException.class, () -> valid.withMaxTokens(-3));
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.greedy(0));
  }

  @Test
  void samplingParamsAcceptsBoundaryValuesAndCopiesLists() {
    SamplingParams params = SamplingParams.greedy(1).withTemperature(0f).withTopK(0)
        .withTopP(0f).withTopP(1.5f).withMaxTokens(1);
    assertEquals(1.5f, params.topP());
    List<Integer> stops = new java.util.ArrayList<>(List.of(2));
    SamplingParams withStops = params.withStopTokenIds(stops);
    stops.add(3);
    assertEquals(List.of(2), withStops.stopTokenIds(), "the record keeps its own copy");
  }

  // ---------------------------------------------------------------------------------- min-p

  @Test
  void minPNeverDrawsATokenBelowItsShareOfTheMostLikelyAndKeepsTheOthersInProportion() {
    float[] logits = logitsOf(0.5, 0.3, 0.15, 0.05);
    // 0.4 x 0.5 = 0.2: tokens 2 and 3 are out, 0 and 1 keep their 5:3 ratio.
    Sampler sampler = new Sampler(sampling(1f, 0, 1f, 11).withMinP(0.4f), 4);
    int draws = 20_000;
    int[] counts = counts(draw(sampler, logits, draws), 4);
    assertEquals(0, counts[2] + counts[3], Arrays.toString(counts));
    assertTrue(chiSquare(new int[] {counts[0], counts[1]}, new double[] {0.625, 0.375}, draws)
        < 10.83, Arrays.toString(counts)); // p = 0.001, one degree of freedom
  }

  @Test
  void minPOfZeroDrawsWhatPlainSamplingDraws() {
    Sampler plain = new Sampler(sampling(0.8f, 0, 0.9f, 5), SPREAD.length);
    Sampler zero = new Sampler(sampling(0.8f, 0, 0.9f, 5).withMinP(0f), SPREAD.length);
    assertArrayEquals(draw(plain, SPREAD, 200), draw(zero, SPREAD, 200));
  }

  @Test
  void minPOutsideZeroToOneIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.greedy(4).withMinP(1.5f));
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.greedy(4).withMinP(-0.1f));
  }

  /**
   * Speculative sampling's rule with a greedy draft: whichever token was drafted (likely,
   * unlikely, or outside the top-k), the verified token is distributed as the target's.
   */
  @ParameterizedTest(name = "top-k {0}, draft {1}")
  @org.junit.jupiter.params.provider.CsvSource({"0, 1", "0, 6", "4, 1", "4, 6"})
  void verifyingAGreedyDraftYieldsTheTargetDistribution(int topK, int draft) {
    float temperature = 0.8f;
    double[] target = new double[SPREAD.length];
    double sum = 0;
    for (int i = 0; i < SPREAD.length; i++) {
      target[i] = Math.exp(SPREAD[i] / temperature);
      sum += target[i];
    }
    for (int i = 0; i < SPREAD.length; i++) {
      target[i] /= sum;
    }
    if (topK > 0) {
      double[] sorted = target.clone();
      Arrays.sort(sorted);
      double threshold = sorted[sorted.length - topK];
      double kept = 0;
      for (int i = 0; i < target.length; i++) {
        target[i] = target[i] >= threshold ? target[i] : 0;
        kept += target[i];
      }
      for (int i = 0; i < target.length; i++) {
        target[i] /= kept;
      }
    }
    Sampler sampler = new Sampler(sampling(temperature, topK, 1f, 17), SPREAD.length);
    int draws = 40_000;
    int[] counts = new int[SPREAD.length];
    for (int i = 0; i < draws; i++) {
      counts[sampler.verify(SPREAD.clone(), draft)]++;
    }
    int support = 0;
    for (int i = 0; i < target.length; i++) {
      if (target[i] == 0) {
        assertEquals(0, counts[i], "token " + i + " is outside the target: "
            + Arrays.toString(counts));
      } else {
        support++;
      }
    }
    int[] inside = new int[support];
    double[] expected = new double[support];
    for (int i = 0, j = 0; i < target.length; i++) {
      if (target[i] > 0) {
        inside[j] = counts[i];
        expected[j++] = target[i];
      }
    }
    // p = 0.001 for 7 and 3 degrees of freedom.
    double limit = support == 8 ? 24.32 : 16.27;
    double chi = chiSquare(inside, expected, draws);
    assertTrue(chi < limit, "chi-square " + chi + ": " + Arrays.toString(counts));
  }

  @Test
  void verifyingAtTemperatureZeroIsTheArgmaxAndASeedRepeatsItself() {
    Sampler greedy = new Sampler(SamplingParams.greedy(4), SPREAD.length);
    assertEquals(1, greedy.verify(SPREAD.clone(), 1));
    assertEquals(1, greedy.verify(SPREAD.clone(), 6));
    Sampler a = new Sampler(sampling(1f, 0, 0.9f, 3), SPREAD.length);
    Sampler b = new Sampler(sampling(1f, 0, 0.9f, 3), SPREAD.length);
    for (int i = 0; i < 200; i++) {
      assertEquals(a.verify(SPREAD.clone(), i % 8), b.verify(SPREAD.clone(), i % 8));
    }
  }
}
