package io.duet.service;

import io.duet.contract.SamplingSpec;
import io.duet.engine.SamplingParams;

/** Turns the wire form of sampling settings into the engine's. */
public final class Sampling {

  private Sampling() {
  }

  /** @throws IllegalArgumentException naming the bad value */
  public static SamplingParams toParams(SamplingSpec spec) {
    return new SamplingParams(spec.temperature(), Math.max(0, spec.topK()), spec.topP(),
        spec.seed(), spec.maxTokens(), spec.stopTokenIds(), spec.stop(), spec.ignoreEos(),
        spec.minTokens(), spec.minP());
  }
}
