package io.duet.engine.tokenizer;

import java.util.Arrays;

/** A binary min-heap of longs, without boxing. */
final class LongHeap {

  private long[] heap;
  private int size;

  LongHeap(int initialCapacity) {
    heap = new long[Math.max(4, initialCapacity)];
  }

  boolean isEmpty() {
    return size == 0;
  }

  void add(long value) {
    if (size == heap.length) {
      heap = Arrays.copyOf(heap, size * 2);
    }
    int at = size++;
    while (at > 0) {
      int parent = (at - 1) >>> 1;
      if (heap[parent] <= value) {
        break;
      }
      heap[at] = heap[parent];
      at = parent;
    }
    heap[at] = value;
  }

  /** Removes and returns the smallest value; the heap must not be empty. */
  long poll() {
    long smallest = heap[0];
    long last = heap[--size];
    int at = 0;
    int half = size >>> 1;
    while (at < half) {
      int child = 2 * at + 1;
      if (child + 1 < size && heap[child + 1] < heap[child]) {
        child++;
      }
      if (last <= heap[child]) {
        break;
      }
      heap[at] = heap[child];
      at = child;
    }
    heap[at] = last;
    return smallest;
  }
}
