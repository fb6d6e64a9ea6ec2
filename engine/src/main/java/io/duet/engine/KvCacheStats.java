package io.duet.engine;

/**
 * A snapshot of the paged KV cache.
 *
 * @param totalBlocks blocks in the pool
 * @param usedBlocks blocks referenced by at least one live sequence
 * @param cachedBlocks unreferenced blocks that still hold a reusable prompt prefix; they are
 *     evicted (least recently used first) when free blocks run out
 * @param freeBlocks blocks holding nothing
 */
public record KvCacheStats(int blockSize, int totalBlocks, int usedBlocks, int cachedBlocks,
    int freeBlocks) {

  /** Blocks an allocation could obtain right now: free plus evictable cached ones. */
  public int availableBlocks() {
    return freeBlocks + cachedBlocks;
  }
}
