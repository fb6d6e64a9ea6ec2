package io.duet.engine;

import java.util.Arrays;

/**
 * Picks the next token from logits, as llama2.c's run.c does: argmax at temperature 0;
 * otherwise softmax of logits / temperature, then multinomial sampling or, with top-p in
 * (0, 1), nucleus sampling, both driven by run.c's xorshift generator, so a seed gives the same
 * tokens as run.c. Top-k, when set, keeps only the k most likely tokens before top-p. Min-p,
 * when set, first drops the tokens less likely than min-p times the most likely one (and
 * renormalizes the rest), as vLLM's {@code min_p}.
 *
 * <p>The generator's state can be read and restored ({@link #state()},
 * {@link #Sampler(SamplingParams, long, int)}), so a sequence prefilled on one engine and
 * decoded on another draws the very numbers it would have drawn on one.
 */
public final class Sampler {

  private static final long ZERO_SEED_STATE = 0x9E3779B97F4A7C15L;

  private final SamplingParams params;
  private long state;
  /** Candidates for top-k/top-p: probability bits (descending) and token id packed in a long. */
  private final long[] candidates;

  /** A sampler whose generator starts from {@code params.seed()}. */
  public Sampler(SamplingParams params, int vocabSize) {
    this(params, params.seed(), vocabSize);
  }

  /**
   * A sampler whose generator continues from a saved {@link #state()}. A state (or seed) of 0
   * would make xorshift return 0 forever; it is replaced by a fixed non-zero constant, so seed 0
   * is as reproducible as any other (run.c instead replaces it with the time).
   */
  public Sampler(SamplingParams params, long state, int vocabSize) {
    this.params = params;
    this.state = state != 0 ? state : ZERO_SEED_STATE;
    this.candidates = params.temperature() > 0 ? new long[vocabSize] : null;
  }

  public long state() {
    return state;
  }

  /** Samples a token; may overwrite {@code logits} with probabilities. */
  public int sample(float[] logits) {
    if (params.temperature() == 0f) {
      return argmax(logits);
    }
    probabilities(logits);
    float coin = nextFloat();
    boolean topP = params.topP() > 0 && params.topP() < 1;
    if (params.topK() > 0 && params.topK() < logits.length) {
      return sampleTopKTopP(logits, params.topK(), topP ? params.topP() : 1f, coin);
    }
    return topP ? sampleTopP(logits, params.topP(), coin) : sampleMultinomial(logits, coin);
  }

  /**
   * Speculative sampling's check of a draft that was proposed greedily (its draft distribution
   * is all on {@code draft}): with {@code p} the distribution {@link #sample} draws from these
   * logits, keeps the draft with probability {@code min(1, p(draft) / 1)}, else draws from
   * {@code max(0, p - q)} renormalized, i.e. {@code p} without the draft. Either way the token
   * is distributed as {@link #sample}'s. At temperature 0 it is the argmax. May overwrite
   * {@code logits}.
   *
   * @return the draft when it is kept, else the token drawn in its place
   */
  public int verify(float[] logits, int draft) {
    if (params.temperature() == 0f) {
      return argmax(logits);
    }
    toDistribution(logits);
    if (nextFloat() < logits[draft]) {
      return draft;
    }
    float rest = 1f - logits[draft];
    logits[draft] = 0f;
    for (int i = 0; i < logits.length; i++) {
      logits[i] /= rest;
    }
    return sampleMultinomial(logits, nextFloat());
  }

  /**
   * Turns logits into the probabilities {@link #sample} draws from: temperature, softmax,
   * min-p, then the top-k and top-p cut (tokens outside it get 0, those inside are
   * renormalized).
   */
  private void toDistribution(float[] logits) {
    probabilities(logits);
    boolean topP = params.topP() > 0 && params.topP() < 1;
    boolean topK = params.topK() > 0 && params.topK() < logits.length;
    if (!topP && !topK) {
      return;
    }
    int n = topK ? sortAll(logits, params.topK()) : sortNucleusCandidates(logits, params.topP());
    float mass = topK ? massOf(params.topK()) : 1f;
    int last = nucleusEnd(n, topP ? params.topP() : 1f, mass);
    float kept = massOf(last + 1);
    Arrays.fill(logits, 0f);
    for (int i = 0; i <= last; i++) {
      logits[token(candidates[i])] = probability(candidates[i]) / kept;
    }
  }

  /** Logits into probabilities: temperature, softmax, then min-p. */
  private void probabilities(float[] logits) {
    float temperature = params.temperature();
    for (int i = 0; i < logits.length; i++) {
      logits[i] /= temperature;
    }
    softmax(logits);
    if (params.minP() > 0) {
      keepMinP(logits, params.minP());
    }
  }

  /** The index of the largest value (the first one on ties): greedy decoding. */
  public static int argmax(float[] values) {
    return argmax(values, 0, values.length);
  }

  /** {@link #argmax(float[])} of {@code values[from, from + length)}, as an index from 0. */
  public static int argmax(float[] values, int from, int length) {
    int best = 0;
    for (int i = 1; i < length; i++) {
      if (values[from + i] > values[from + best]) {
        best = i;
      }
    }
    return best;
  }

  static void softmax(float[] x) {
    float max = x[0];
    for (int i = 1; i < x.length; i++) {
      if (x[i] > max) {
        max = x[i];
      }
    }
    float sum = 0f;
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) Math.exp(x[i] - max);
      sum += x[i];
    }
    for (int i = 0; i < x.length; i++) {
      x[i] /= sum;
    }
  }

  /** Zeroes the probabilities below {@code minP} times the largest one and renormalizes. */
  static void keepMinP(float[] probabilities, float minP) {
    float max = 0f;
    for (float p : probabilities) {
      max = Math.max(max, p);
    }
    float threshold = minP * max;
    float kept = 0f;
    for (int i = 0; i < probabilities.length; i++) {
      if (probabilities[i] < threshold) {
        probabilities[i] = 0f;
      } else {
        kept += probabilities[i];
      }
    }
    for (int i = 0; i < probabilities.length; i++) {
      probabilities[i] /= kept;
    }
  }

  private static int sampleMultinomial(float[] probabilities, float coin) {
    float cdf = 0f;
    for (int i = 0; i < probabilities.length; i++) {
      cdf += probabilities[i];
      if (coin < cdf) {
        return i;
      }
    }
    return probabilities.length - 1;
  }

  /**
   * run.c's nucleus sampling: tokens below {@code (1 - p) / (n - 1)} cannot be in the nucleus
   * and are dropped before sorting; ties keep ascending token order (glibc's stable qsort).
   */
  private int sampleTopP(float[] probabilities, float topP, float coin) {
    return pickFromSorted(sortNucleusCandidates(probabilities, topP), topP, 1f, coin);
  }

  /** Sorts the tokens that can be in the nucleus into {@link #candidates}; returns how many. */
  private int sortNucleusCandidates(float[] probabilities, float topP) {
    float cutoff = (1.0f - topP) / (probabilities.length - 1);
    int n = 0;
    for (int i = 0; i < probabilities.length; i++) {
      if (probabilities[i] >= cutoff) {
        candidates[n++] = pack(probabilities[i], i);
      }
    }
    Arrays.sort(candidates, 0, n);
    return n;
  }

  private int sampleTopKTopP(float[] probabilities, int k, float topP, float coin) {
    return pickFromSorted(sortAll(probabilities, k), topP, massOf(k), coin);
  }

  /** Sorts every token into {@link #candidates}; returns {@code k}, the ones kept. */
  private int sortAll(float[] probabilities, int k) {
    for (int i = 0; i < probabilities.length; i++) {
      candidates[i] = pack(probabilities[i], i);
    }
    Arrays.sort(candidates, 0, probabilities.length);
    return k;
  }

  /** The probability of the first {@code n} sorted candidates, summed in order. */
  private float massOf(int n) {
    float mass = 0f;
    for (int i = 0; i < n; i++) {
      mass += probability(candidates[i]);
    }
    return mass;
  }

  /** The last sorted candidate before cumulative probability passes {@code topP * mass}. */
  private int nucleusEnd(int n, float topP, float mass) {
    float cumulative = 0f;
    float threshold = topP * mass;
    for (int i = 0; i < n; i++) {
      cumulative += probability(candidates[i]);
      if (cumulative > threshold) {
        return i;
      }
    }
    return n - 1;
  }

  /** Cuts the sorted candidates at cumulative probability {@code topP * mass}, then draws. */
  private int pickFromSorted(int n, float topP, float mass, float coin) {
    int last = nucleusEnd(n, topP, mass);
    float r = coin * massOf(last + 1);
    float cdf = 0f;
    for (int i = 0; i <= last; i++) {
      cdf += probability(candidates[i]);
      if (r < cdf) {
        return token(candidates[i]);
      }
    }
    return token(candidates[last]);
  }

  /** Sorting these ascending orders by probability descending, then token id ascending. */
  private static long pack(float probability, int token) {
    long inverted = Integer.MAX_VALUE - Float.floatToRawIntBits(probability);
    return (inverted << 32) | token;
  }

  private static float probability(long packed) {
    return Float.intBitsToFloat((int) (Integer.MAX_VALUE - (packed >> 32)));
  }

  private static int token(long packed) {
    return (int) packed;
  }

  /** run.c's xorshift64* step. */
  private int nextInt() {
    state ^= state >>> 12;
    state ^= state << 25;
    state ^= state >>> 27;
    return (int) ((state * 0x2545F4914F6CDD1DL) >>> 32);
  }

  /** A float in [0, 1) from the top 24 bits, as run.c's random_f32. */
  private float nextFloat() {
    return (nextInt() >>> 8) / 16777216.0f;
  }
}
