package io.duet.engine.spi;

import io.duet.engine.compute.Kernels;
import io.duet.engine.compute.WorkerPool;

/**
 * What the engine lends an architecture's forward pass.
 *
 * @param kv the paged KV cache
 * @param pool the compute threads (the calling thread is one of them)
 * @param kernels the matrix and vector kernels chosen for this machine
 * @param maxTokens token rows of the largest batch
 * @param maxLogitRows logits rows of the largest batch
 */
public record ForwardResources(PagedKvCache kv, WorkerPool pool, Kernels kernels, int maxTokens,
    int maxLogitRows) {
}
