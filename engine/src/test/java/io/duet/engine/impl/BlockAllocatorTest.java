package io.duet.engine.impl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.KvCacheFullException;
import io.duet.engine.KvCacheStats;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class BlockAllocatorTest {

  private static final int BLOCK_SIZE = 4;

  private static KvCacheStats stats(int total, int used, int cached, int free) {
    return new KvCacheStats(BLOCK_SIZE, total, used, cached, free);
  }

  // ------------------------------------------------------------------- allocate and release

  @Test
  void allocatesDistinctBlocksAndCountsThem() {
    BlockAllocator allocator = new BlockAllocator(8, BLOCK_SIZE);
    assertEquals(BLOCK_SIZE, allocator.blockSize());
    assertEquals(stats(8, 0, 0, 8), allocator.stats());

    int[] first = allocator.allocate(3);
    int[] second = allocator.allocate(5);
    assertEquals(3, first.length);
    assertEquals(5, second.length);
    Set<Integer> all = new HashSet<>();
    for (int block : concat(first, second)) {
      assertTrue(block >= 0 && block < 8, "block id out of range: " + block);
      assertTrue(all.add(block), "block handed out twice: " + block);
    }
    assertEquals(stats(8, 8, 0, 0), allocator.stats());
    assertEquals(0, allocator.stats().availableBlocks());

    for (int block : first) {
      allocator.release(block);
    }
    assertEquals(stats(8, 5, 0, 3), allocator.stats());
    for (int block : second) {
      allocator.release(block);
    }
    assertEquals(stats(8, 0, 0, 8), allocator.stats());
  }

  @Test
  void allocatingZeroBlocksGivesNothingAndChangesNothing() {
    BlockAllocator allocator = new BlockAllocator(2, BLOCK_SIZE);
    assertEquals(0, allocator.allocate(0).length);
    assertEquals(stats(2, 0, 0, 2), allocator.stats());
  }

  @Test
  void aReleasedBlockCanBeAllocatedAgain() {
    BlockAllocator allocator = new BlockAllocator(1, BLOCK_SIZE);
    int block = allocator.allocate(1)[0];
    allocator.release(block);
    assertArrayEquals(new int[] {block}, allocator.allocate(1));
  }

  @Test
  void allocationIsAllOrNothing() {
    BlockAllocator allocator = new BlockAllocator(8, BLOCK_SIZE);
    int[] held = allocator.allocate(5);
    KvCacheStats before = allocator.stats();

    KvCacheFullException full = assertThrows(KvCacheFullException.class,
        () -> allocator.allocate(4));
    assertTrue(full.getMessage().contains("4") && full.getMessage().contains("3"),
        full.getMessage());
    assertEquals(before, allocator.stats(), "a failed allocation must not take any block");

    // Exactly what is left can still be had, and none of it overlaps what is held.
    int[] rest = allocator.allocate(3);
    Set<Integer> all = new HashSet<>();
    for (int block : concat(held, rest)) {
      assertTrue(all.add(block), "block handed out twice: " + block);
    }
    assertThrows(KvCacheFullException.class, () -> allocator.allocate(1));
    assertEquals(stats(8, 8, 0, 0), allocator.stats());
  }

  @Test
  void aFailedAllocationDoesNotEvictCachedBlocks() {
    BlockAllocator allocator = new BlockAllocator(3, BLOCK_SIZE);
    int[] tokens = {1, 2, 3, 4};
    long hash = BlockAllocator.chainHash(0, tokens, 0, BLOCK_SIZE);
    int cached = allocator.allocate(1)[0];
    allocator.publish(cached, hash, tokens, 0);
    allocator.release(cached);
    KvCacheStats before = allocator.stats();
    assertEquals(stats(3, 0, 1, 2), before);

    assertThrows(KvCacheFullException.class, () -> allocator.allocate(4));
    assertEquals(before, allocator.stats());
    assertEquals(cached, allocator.acquireCached(hash, tokens, 0), "the cached block survived");
  }

  @Test
  void releasingMoreOftenThanHeldThrows() {
    BlockAllocator allocator = new BlockAllocator(4, BLOCK_SIZE);
    int block = allocator.allocate(1)[0];
    allocator.release(block);
    KvCacheStats before = allocator.stats();
    assertThrows(IllegalStateException.class, () -> allocator.release(block));
    assertEquals(before, allocator.stats(), "a refused release changes nothing");

    int neverAllocated = (block + 1) % 4;
    assertThrows(IllegalStateException.class, () -> allocator.release(neverAllocated));
    assertEquals(before, allocator.stats());
  }

  @Test
  void aBlockStaysInUseUntilEveryReferenceIsReleased() {
    BlockAllocator allocator = new BlockAllocator(4, BLOCK_SIZE);
    int[] tokens = {7, 8, 9, 10};
    long hash = BlockAllocator.chainHash(0, tokens, 0, BLOCK_SIZE);
    int block = allocator.allocate(1)[0];
    allocator.publish(block, hash, tokens, 0);

    // Two more sequences share the published block: three references in all.
    assertEquals(block, allocator.acquireCached(hash, tokens, 0));
    assertEquals(block, allocator.acquireCached(hash, tokens, 0));
    assertEquals(stats(4, 1, 0, 3), allocator.stats(), "a shared block counts once");

    allocator.release(block);
    allocator.release(block);
    assertEquals(stats(4, 1, 0, 3), allocator.stats());
    allocator.release(block);
    assertEquals(stats(4, 0, 1, 3), allocator.stats());
    assertThrows(IllegalStateException.class, () -> allocator.release(block));
  }

  // ---------------------------------------------------------------------------- prefix cache

  @Test
  void aPublishedBlockIsFoundByHashAndEqualTokens() {
    BlockAllocator allocator = new BlockAllocator(4, BLOCK_SIZE);
    int[] prompt = {1, 2, 3, 4, 5, 6, 7, 8};
    long h0 = BlockAllocator.chainHash(0, prompt, 0, BLOCK_SIZE);
    long h1 = BlockAllocator.chainHash(h0, prompt, BLOCK_SIZE, BLOCK_SIZE);
    int[] blocks = allocator.allocate(2);
    allocator.publish(blocks[0], h0, prompt, 0);
    allocator.publish(blocks[1], h1, prompt, BLOCK_SIZE);

    // The same tokens in another array and at another offset still hit.
    int[] other = {99, 1, 2, 3, 4, 5, 6, 7, 8, 42};
    assertEquals(blocks[0], allocator.acquireCached(h0, other, 1));
    assertEquals(blocks[1], allocator.acquireCached(h1, other, 1 + BLOCK_SIZE));
    assertEquals(-1, allocator.acquireCached(h0 ^ 1, prompt, 0), "unknown hash");
  }

  @Test
  void aHashMatchWithDifferentTokensMisses() {
    BlockAllocator allocator = new BlockAllocator(4, BLOCK_SIZE);
    int[] tokens = {1, 2, 3, 4};
    long hash = BlockAllocator.chainHash(0, tokens, 0, BLOCK_SIZE);
    int block = allocator.allocate(1)[0];
    allocator.publish(block, hash, tokens, 0);
    allocator.release(block);
    KvCacheStats before = allocator.stats();

    // A (simulated) hash collision: same hash, other tokens. Handing out the block would give
    // the sequence somebody else's keys and values.
    assertEquals(-1, allocator.acquireCached(hash, new int[] {1, 2, 3, 5}, 0));
    assertEquals(-1, allocator.acquireCached(hash, new int[] {0, 1, 2, 3, 4}, 0));
    assertEquals(before, allocator.stats(), "a miss takes no reference");
    assertEquals(block, allocator.acquireCached(hash, tokens, 0));
  }

  @Test
  void publishingCopiesTheTokens() {
    BlockAllocator allocator = new BlockAllocator(2, BLOCK_SIZE);
    int[] tokens = {1, 2, 3, 4};
    long hash = BlockAllocator.chainHash(0, tokens, 0, BLOCK_SIZE);
    int block = allocator.allocate(1)[0];
    allocator.publish(block, hash, tokens, 0);
    tokens[3] = 99; // the caller reuses its array
    assertEquals(block, allocator.acquireCached(hash, new int[] {1, 2, 3, 4}, 0));
  }

  @Test
  void unreferencedPublishedBlocksCountAsCachedAndComeBackOnAHit() {
    BlockAllocator allocator = new BlockAllocator(4, BLOCK_SIZE);
    int[] tokens = {5, 6, 7, 8};
    long hash = BlockAllocator.chainHash(0, tokens, 0, BLOCK_SIZE);
    int[] blocks = allocator.allocate(2);
    allocator.publish(blocks[0], hash, tokens, 0);
    allocator.release(blocks[0]);
    allocator.release(blocks[1]); // never published: plain free
    KvCacheStats afterRelease = allocator.stats();
    assertEquals(stats(4, 0, 1, 3), afterRelease);
    assertEquals(4, afterRelease.availableBlocks());

    assertEquals(blocks[0], allocator.acquireCached(hash, tokens, 0));
    assertEquals(stats(4, 1, 0, 3), allocator.stats());
  }

  @Test
  void aSecondBlockWithTheSameContentIsNotPublished() {
    BlockAllocator allocator = new BlockAllocator(4, BLOCK_SIZE);
    int[] tokens = {1, 1, 2, 3};
    long hash = BlockAllocator.chainHash(0, tokens, 0, BLOCK_SIZE);
    int[] blocks = allocator.allocate(2);
    allocator.publish(blocks[0], hash, tokens, 0);
    allocator.publish(blocks[1], hash, tokens, 0);
    allocator.release(blocks[1]);
    assertEquals(stats(4, 1, 0, 3), allocator.stats(), "the duplicate went back to free");
    assertEquals(blocks[0], allocator.acquireCached(hash, tokens, 0));
  }

  @Test
  void freeBlocksAreUsedBeforeCachedOnesAreEvicted() {
    BlockAllocator allocator = new BlockAllocator(4, BLOCK_SIZE);
    int[][] contents = {{1, 2, 3, 4}, {5, 6, 7, 8}};
    long[] hashes = new long[2];
    int[] blocks = allocator.allocate(2);
    for (int i = 0; i < 2; i++) {
      hashes[i] = BlockAllocator.chainHash(0, contents[i], 0, BLOCK_SIZE);
      allocator.publish(blocks[i], hashes[i], contents[i], 0);
      allocator.release(blocks[i]);
    }
    assertEquals(stats(4, 0, 2, 2), allocator.stats());

    int[] fresh = allocator.allocate(2);
    for (int block : fresh) {
      assertTrue(block != blocks[0] && block != blocks[1], "evicted a cached block too early");
    }
    assertEquals(stats(4, 2, 2, 0), allocator.stats());
    assertEquals(blocks[0], allocator.acquireCached(hashes[0], contents[0], 0));
    assertEquals(blocks[1], allocator.acquireCached(hashes[1], contents[1], 0));
  }

  @Test
  void cachedBlocksAreEvictedLeastRecentlyReleasedFirst() {
    BlockAllocator allocator = new BlockAllocator(4, BLOCK_SIZE);
    int[] blocks = allocator.allocate(4);
    int[][] contents = new int[4][];
    long[] hashes = new long[4];
    for (int i = 0; i < 4; i++) {
      contents[i] = new int[] {i, i + 10, i + 20, i + 30};
      hashes[i] = BlockAllocator.chainHash(0, contents[i], 0, BLOCK_SIZE);
      allocator.publish(blocks[i], hashes[i], contents[i], 0);
    }
    int[] releaseOrder = {2, 0, 3, 1};
    for (int i : releaseOrder) {
      allocator.release(blocks[i]);
    }
    assertEquals(stats(4, 0, 4, 0), allocator.stats());

    int[] evicted = allocator.allocate(2);
    assertArrayEquals(new int[] {blocks[2], blocks[0]}, evicted,
        "the two least recently released blocks are evicted, oldest first");
    assertEquals(stats(4, 2, 2, 0), allocator.stats());
    assertEquals(-1, allocator.acquireCached(hashes[2], contents[2], 0), "evicted: no hit");
    assertEquals(-1, allocator.acquireCached(hashes[0], contents[0], 0), "evicted: no hit");
    assertEquals(blocks[3], allocator.acquireCached(hashes[3], contents[3], 0));
    assertEquals(blocks[1], allocator.acquireCached(hashes[1], contents[1], 0));
  }

  @Test
  void aCacheHitRefreshesTheBlocksPlaceInTheEvictionOrder() {
    BlockAllocator allocator = new BlockAllocator(2, BLOCK_SIZE);
    int[] blocks = allocator.allocate(2);
    int[][] contents = {{1, 2, 3, 4}, {5, 6, 7, 8}};
    long[] hashes = new long[2];
    for (int i = 0; i < 2; i++) {
      hashes[i] = BlockAllocator.chainHash(0, contents[i], 0, BLOCK_SIZE);
      allocator.publish(blocks[i], hashes[i], contents[i], 0);
      allocator.release(blocks[i]);
    }
    // Block 0 was released first, but is used again and released last.
    assertEquals(blocks[0], allocator.acquireCached(hashes[0], contents[0], 0));
    allocator.release(blocks[0]);

    assertArrayEquals(new int[] {blocks[1]}, allocator.allocate(1));
    assertEquals(blocks[0], allocator.acquireCached(hashes[0], contents[0], 0));
    assertEquals(-1, allocator.acquireCached(hashes[1], contents[1], 0));
  }

  @Test
  void anEvictedBlockCanBePublishedAgainWithNewContent() {
    BlockAllocator allocator = new BlockAllocator(1, BLOCK_SIZE);
    int[] oldTokens = {1, 2, 3, 4};
    int[] newTokens = {4, 3, 2, 1};
    long oldHash = BlockAllocator.chainHash(0, oldTokens, 0, BLOCK_SIZE);
    long newHash = BlockAllocator.chainHash(0, newTokens, 0, BLOCK_SIZE);
    int block = allocator.allocate(1)[0];
    allocator.publish(block, oldHash, oldTokens, 0);
    allocator.release(block);

    assertEquals(block, allocator.allocate(1)[0]);
    allocator.publish(block, newHash, newTokens, 0);
    allocator.release(block);
    assertEquals(stats(1, 0, 1, 0), allocator.stats());
    assertEquals(-1, allocator.acquireCached(oldHash, oldTokens, 0));
    assertEquals(block, allocator.acquireCached(newHash, newTokens, 0));
  }

  // ------------------------------------------------------------------------------ chainHash

  @Test
  void chainHashDependsOnEverythingBeforeTheBlock() {
    int[] a = {1, 2, 3, 4, 5, 6, 7, 8};
    int[] b = {1, 2, 3, 9, 5, 6, 7, 8}; // differs only in the first block
    long a0 = BlockAllocator.chainHash(0, a, 0, BLOCK_SIZE);
    long b0 = BlockAllocator.chainHash(0, b, 0, BLOCK_SIZE);
    assertNotEquals(a0, b0);
    long a1 = BlockAllocator.chainHash(a0, a, BLOCK_SIZE, BLOCK_SIZE);
    long b1 = BlockAllocator.chainHash(b0, b, BLOCK_SIZE, BLOCK_SIZE);
    assertNotEquals(a1, b1, "same second block after a different first block");

    // Deterministic, and equal content after an equal prefix hashes equally.
    int[] shifted = {0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    long s0 = BlockAllocator.chainHash(0, shifted, 2, BLOCK_SIZE);
    assertEquals(a0, s0);
    assertEquals(a1, BlockAllocator.chainHash(s0, shifted, 2 + BLOCK_SIZE, BLOCK_SIZE));
  }

  @Test
  void chainHashDependsOnTokenOrderAndPredecessor() {
    int[] tokens = {1, 2, 3, 4};
    int[] swapped = {2, 1, 3, 4};
    assertNotEquals(BlockAllocator.chainHash(0, tokens, 0, 4),
        BlockAllocator.chainHash(0, swapped, 0, 4));
    Set<Long> seen = new HashSet<>();
    for (long previous = 0; previous < 1000; previous++) {
      assertTrue(seen.add(BlockAllocator.chainHash(previous, tokens, 0, 4)),
          "predecessor " + previous + " collides");
    }
  }

  // ---------------------------------------------------------------------------- concurrency

  @Test
  void concurrentAllocateAndReleaseKeepTheCountsConsistent() {
    assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
      BlockAllocator allocator = new BlockAllocator(64, BLOCK_SIZE);
      int[] shared = {1, 2, 3, 4};
      long sharedHash = BlockAllocator.chainHash(0, shared, 0, BLOCK_SIZE);
      int published = allocator.allocate(1)[0];
      allocator.publish(published, sharedHash, shared, 0);
      allocator.release(published);

      AtomicReference<Throwable> failure = new AtomicReference<>();
      CountDownLatch start = new CountDownLatch(1);
      Thread[] threads = new Thread[3];
      for (int t = 0; t < threads.length; t++) {
        int seed = t;
        threads[t] = new Thread(() -> {
          try {
            start.await();
            for (int i = 0; i < 20_000; i++) {
              int[] blocks = allocator.allocate(1 + (i + seed) % 5);
              int hit = allocator.acquireCached(sharedHash, shared, 0);
              for (int block : blocks) {
                allocator.release(block);
              }
              if (hit >= 0) {
                allocator.release(hit);
              }
            }
          } catch (Throwable e) {
            failure.compareAndSet(null, e);
          }
        });
        threads[t].start();
      }
      start.countDown();
      for (Thread thread : threads) {
        thread.join();
      }
      if (failure.get() != null) {
        throw new AssertionError("a worker failed", failure.get());
      }
      KvCacheStats end = allocator.stats();
      assertEquals(0, end.usedBlocks(), end.toString());
      assertEquals(64, end.cachedBlocks() + end.freeBlocks(), end.toString());
    });
  }

  private static int[] concat(int[] a, int[] b) {
    int[] all = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, all, a.length, b.length);
    return all;
  }
}
