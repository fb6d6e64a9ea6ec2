package io.duet.proxy;

import io.duet.contract.DecodeEvent;
import io.vertx.core.streams.ReadStream;

/** The decode events of one running {@link CompletionJob}. */
public interface CompletionStream extends ReadStream<DecodeEvent> {

  /** Stops the job and frees what it holds in the cluster (client went away). Idempotent. */
  void cancel();

  /**
   * The stages of this request's time to first token that its instances reported so far (the
   * prefill's once it is done, the decode's with the first event); {@link TtftStages#NONE} for a
   * backend without separate stages.
   */
  default TtftStages ttftStages() {
    return TtftStages.NONE;
  }
}
