package io.duet.engine.impl;

import io.duet.engine.spi.LoadedModel;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One load of a model and the engines that use it: the weights are read-only, so the
 * data-parallel ranks of one JVM share them instead of mapping (or copying) them once each.
 * Counted: whoever holds it releases it once, and the last release lets go of the weights.
 */
final class SharedModel {

  private final LoadedModel model;
  /** The holders: the opener while it opens engines, then each open engine. */
  private final AtomicInteger holders = new AtomicInteger(1);

  /** The model, held by its opener until it {@link #release}s it. */
  SharedModel(LoadedModel model) {
    this.model = model;
  }

  LoadedModel model() {
    return model;
  }

  /** One more holder; only while the model is held by someone (the opener at least). */
  void acquire() {
    if (holders.getAndIncrement() <= 0) {
      throw new IllegalStateException("the model was already let go of");
    }
  }

  /** One holder fewer; the last closes the model. */
  void release() {
    if (holders.decrementAndGet() == 0) {
      model.close();
    }
  }
}
