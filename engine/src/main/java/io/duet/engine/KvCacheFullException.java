package io.duet.engine;

/**
 * The paged KV cache has no free block left for a request. Nothing was allocated by the call
 * that throws it; the caller may retry once other sequences have finished.
 */
public class KvCacheFullException extends RuntimeException {
  public KvCacheFullException(int needed, int available) {
    super("KV cache full: needed " + needed + " blocks, " + available + " can be freed");
  }
}
