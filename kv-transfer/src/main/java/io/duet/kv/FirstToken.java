package io.duet.kv;

/**
 * The first token sampled after a prompt and the sampler's state after drawing it: what a
 * layered KV stream ends with, since its sender knows them only once its prefill has ended.
 */
public record FirstToken(int token, long samplerState) {
}
