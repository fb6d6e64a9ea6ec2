package io.duet.engine.impl;

import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * How far each layer of a sequence's KV is computed, for a snapshot read while the engine
 * computes it. The engine thread writes a layer's KV, then raises its count (a volatile write),
 * so a reader that sees the count sees the values.
 */
final class KvProgress {

  private final AtomicIntegerArray ready;
  private final Runnable listener;

  KvProgress(int layers, int computedTokens, Runnable listener) {
    this.ready = new AtomicIntegerArray(layers);
    this.listener = listener;
    for (int l = 0; l < layers; l++) {
      ready.set(l, computedTokens);
    }
  }

  int readyTokens(int layer) {
    return ready.get(layer);
  }

  /** Layer {@code layer} is computed up to token {@code tokens}; engine thread. */
  void layerComputed(int layer, int tokens) {
    if (tokens > ready.get(layer)) {
      ready.set(layer, tokens);
      listener.run();
    }
  }
}
