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
 * @param experts this engine's end of its expert-parallel group's all-to-all
 *     ({@link ExpertExchange#solo()} when it holds every expert); only architectures with routed
 *     experts use it
 * @param expertSlots the routed-expert slots of the group, redundant copies included; 0 for one
 *     slot per expert
 */
public record ForwardResources(PagedKvCache kv, WorkerPool pool, Kernels kernels, int maxTokens,
    int maxLogitRows, ExpertExchange experts, int expertSlots) {
}
