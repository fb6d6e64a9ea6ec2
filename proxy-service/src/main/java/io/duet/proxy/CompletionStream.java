package io.duet.proxy;

import io.duet.cluster.protocol.DecodeEvent;
import io.vertx.core.streams.ReadStream;

/** The decode events of one running {@link CompletionJob}. */
public interface CompletionStream extends ReadStream<DecodeEvent> {

  /** Stops the job and frees what it holds in the cluster (client went away). Idempotent. */
  void cancel();
}
