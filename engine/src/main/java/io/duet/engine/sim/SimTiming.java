package io.duet.engine.sim;

/**
 * How long a forward pass of the simulated model takes on the reference hardware, from what the
 * batch holds. Prefill is compute-bound: a fixed cost, then each computed prompt token, then each
 * pair of a computed token and an earlier position it attends to, divided over the instance's
 * accelerators; prefix-cache hits are not computed, so they cost only as positions attended to.
 * Decode is memory-bound: a fixed cost per step (weights, the expert all-to-all), then each
 * sequence, then each position the sequences attend to, plus the all-to-all a lockstep rank
 * waits for.
 *
 * <p>Speculative decoding (MTP): a real step verifies {@code speculativeTokens} drafts per
 * sequence and so yields 1 + the accepted ones. The engine's decode step yields one token per
 * sequence, so a simulated step takes the real step's time divided by the expected tokens per
 * real step: tokens per second and time per output token come out as the reference's, one token
 * at a time.
 */
public final class SimTiming {

  private final SimProfile profile;

  public SimTiming(SimProfile profile) {
    this.profile = profile;
  }

  /**
   * Nanoseconds of a prefill pass computing {@code tokens} prompt tokens whose positions sum to
   * {@code attendedPairs} (each token attends to every earlier position of its sequence).
   */
  public long prefillNanos(int tokens, long attendedPairs) {
    double seconds = profile.prefillOverheadMillis() / 1e3
        + (tokens / profile.prefillTokensPerSecond() + attendedPairs
            * profile.prefillAttentionNanos() / 1e9) / profile.accelerators();
    return scaled(seconds);
  }

  /**
   * Nanoseconds of one engine decode step over {@code sequences} sequences attending to
   * {@code contextTokens} positions together.
   */
  public long decodeNanos(int sequences, long contextTokens) {
    double seconds = (profile.decodeStepMillis() + profile.decodeAllToAllMillis()
        + sequences * profile.decodeSequenceMillis()) / 1e3
        + contextTokens * profile.decodeKvTokenNanos() / 1e9;
    return scaled(seconds / tokensPerStep());
  }

  /**
   * Tokens one real decode step yields per sequence: 1, plus each draft token, which counts only
   * when every draft before it was accepted too.
   */
  public double tokensPerStep() {
    double tokens = 1;
    double accepted = 1;
    for (int i = 0; i < profile.speculativeTokens(); i++) {
      accepted *= profile.acceptanceRate();
      tokens += accepted;
    }
    return tokens;
  }

  private long scaled(double seconds) {
    return Math.round(seconds * profile.timeScale() * 1e9);
  }
}
