package io.duet.engine.tokenizer;

import java.util.Arrays;

/**
 * The merges of a BPE vocabulary: (left id, right id) to a packed {@link PairMerger#merge}, in
 * an open-addressing table of primitives (a lookup per adjacent pair is the tokenizer's hot
 * path). Filled once, then read-only.
 */
final class PairTable {

  private static final long EMPTY = -1L;

  private final long[] keys;
  private final long[] values;
  private final int mask;

  PairTable(int expectedEntries) {
    int capacity = Integer.highestOneBit(Math.max(4, expectedEntries) * 2 - 1) << 1;
    keys = new long[capacity];
    values = new long[capacity];
    mask = capacity - 1;
    Arrays.fill(keys, EMPTY);
  }

  /** Sets the merge of the pair; a later put of the same pair replaces it. */
  void put(int left, int right, long merge) {
    long key = key(left, right);
    int slot = slot(key);
    keys[slot] = key;
    values[slot] = merge;
  }

  /** The merge of the pair, or {@link PairMerger#NO_MERGE}. */
  long get(int left, int right) {
    long key = key(left, right);
    int slot = slot(key);
    return keys[slot] == key ? values[slot] : PairMerger.NO_MERGE;
  }

  /** The slot holding {@code key}, or the empty one where it belongs. */
  private int slot(long key) {
    int slot = (int) mix(key) & mask;
    while (keys[slot] != EMPTY && keys[slot] != key) {
      slot = (slot + 1) & mask;
    }
    return slot;
  }

  private static long key(int left, int right) {
    return ((long) left << 32) | (right & 0xFFFF_FFFFL);
  }

  private static long mix(long key) {
    long h = key * 0x9E37_79B9_7F4A_7C15L;
    return h ^ (h >>> 29);
  }
}
