package io.duet.engine.impl;

import io.duet.engine.KvCacheFullException;
import io.duet.engine.KvCacheStats;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;

/**
 * Hands out fixed-size KV blocks with reference counts, and remembers full blocks of prompt
 * prefixes so that a later sequence starting with the same tokens reuses them.
 *
 * <p>A cached block is keyed by the hash chain of its sequence's tokens up to and including the
 * block, and it also keeps those tokens so that a hash collision can never hand out wrong KV.
 * Blocks whose count drops to zero stay cached (evictable, least recently used first) until an
 * allocation needs them.
 *
 * <p>A block may also depend on tokens after it: a drafting module's KV of a block's last slot
 * is computed from the token that follows. Such a cache keys and compares each block with
 * {@code lookahead} tokens past its end, and a block is only reused ahead of the same tokens.
 * Thread-safe: the engine thread allocates while KV transfers import and
 * release on other threads.
 */
public final class BlockAllocator {

  private final int blockSize;
  /** Tokens after a block that its cached content depends on. */
  private final int lookahead;
  private final int[] refCounts;
  private final long[] blockHash;
  private final int[][] blockTokens;
  private final boolean[] hashed;
  private final ArrayDeque<Integer> free = new ArrayDeque<>();
  /** Cached blocks nobody references, oldest first. */
  private final LinkedHashSet<Integer> evictable = new LinkedHashSet<>();
  private final Map<Long, Integer> byHash = new HashMap<>();
  private int used;

  public BlockAllocator(int blocks, int blockSize) {
    this(blocks, blockSize, 0);
  }

  /** @param lookahead tokens after a block that its content depends on (see the class) */
  public BlockAllocator(int blocks, int blockSize, int lookahead) {
    this.blockSize = blockSize;
    this.lookahead = lookahead;
    this.refCounts = new int[blocks];
    this.blockHash = new long[blocks];
    this.blockTokens = new int[blocks][];
    this.hashed = new boolean[blocks];
    for (int b = 0; b < blocks; b++) {
      free.add(b);
    }
  }

  public int blockSize() {
    return blockSize;
  }

  /** Tokens a cached block is keyed by: its own and the {@code lookahead} after it. */
  public int keyTokens() {
    return blockSize + lookahead;
  }

  /** Allocates {@code count} blocks, all or none. */
  public synchronized int[] allocate(int count) {
    int available = free.size() + evictable.size();
    if (count > available) {
      throw new KvCacheFullException(count, available);
    }
    int[] blocks = new int[count];
    for (int i = 0; i < count; i++) {
      Integer block = free.poll();
      if (block == null) {
        block = evictable.iterator().next();
        evictable.remove(block);
        forget(block);
      }
      refCounts[block] = 1;
      blocks[i] = block;
    }
    used += count;
    return blocks;
  }

  /** Drops one reference; an unreferenced block goes back to the pool (cached or free). */
  public synchronized void release(int block) {
    if (refCounts[block] <= 0) {
      throw new IllegalStateException("block " + block + " released more often than held");
    }
    if (--refCounts[block] == 0) {
      used--;
      if (hashed[block]) {
        evictable.add(block);
      } else {
        free.add(block);
      }
    }
  }

  /**
   * Finds a cached block holding exactly {@code tokens[from, from + keyTokens())} after the
   * prefix whose chain hash is {@code hash}, and takes a reference to it.
   *
   * @return the block, or -1 when none is cached
   */
  public synchronized int acquireCached(long hash, int[] tokens, int from) {
    Integer block = byHash.get(hash);
    if (block == null || !Arrays.equals(blockTokens[block], 0, keyTokens(), tokens, from,
        from + keyTokens())) {
      return -1;
    }
    if (refCounts[block]++ == 0) {
      evictable.remove(block);
      used++;
    }
    return block;
  }

  /**
   * Offers a full, immutable block for reuse by later sequences. A block with the same content
   * already cached wins; this one then simply is not published.
   */
  public synchronized void publish(int block, long hash, int[] tokens, int from) {
    if (refCounts[block] <= 0) {
      throw new IllegalStateException("block " + block + " is published without being held");
    }
    if (hashed[block] || byHash.containsKey(hash)) {
      return;
    }
    hashed[block] = true;
    blockHash[block] = hash;
    blockTokens[block] = Arrays.copyOfRange(tokens, from, from + keyTokens());
    byHash.put(hash, block);
  }

  private void forget(int block) {
    if (hashed[block]) {
      byHash.remove(blockHash[block]);
      hashed[block] = false;
      blockTokens[block] = null;
    }
  }

  public synchronized KvCacheStats stats() {
    return new KvCacheStats(blockSize, refCounts.length, used, evictable.size(), free.size());
  }

  /** The hash of a block, chained on the hash of everything before it. */
  public static long chainHash(long previous, int[] tokens, int from, int length) {
    long h = previous ^ 0x9E3779B97F4A7C15L;
    for (int i = from; i < from + length; i++) {
      h = (h ^ tokens[i]) * 0xBF58476D1CE4E5B9L;
      h ^= h >>> 31;
    }
    return h * 0x94D049BB133111EBL ^ (h >>> 29);
  }
}
