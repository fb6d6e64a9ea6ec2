package io.duet.proxy;

import io.duet.cluster.protocol.DecodeEvent;
import io.vertx.core.streams.ReadStream;
import java.util.Optional;

/** The decode events of one running {@link CompletionJob}. */
public interface CompletionStream extends ReadStream<DecodeEvent> {

  /** Stops the job and frees what it holds in the cluster (client went away). Idempotent. */
  void cancel();

  /**
   * The prefill instance's timing of this request, once its prefill is done; empty before, and
   * always for a backend without a separate prefill stage.
   */
  default Optional<PrefillTiming> prefillTiming() {
    return Optional.empty();
  }
}
