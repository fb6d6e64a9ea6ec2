package io.duet.engine;

import java.nio.ByteBuffer;

/**
 * A sequence's computed KV as it leaves an engine, block by block. Block {@code i} holds the
 * sequence's tokens {@code [i * blockSize, i * blockSize + slots(i))}; its payload is, for each
 * layer, for each {@link KvComponent} of the layout, for each of the component's runs, the
 * run's values of those slots, little-endian. Valid while the sequence stays allocated and is
 * not stepped, except for a snapshot taken with {@link Engine#exportKvAsComputed}, which is read
 * while the engine computes it: one layer of a block at a time, once {@link #readyTokens} of that
 * layer covers the block.
 */
public interface KvSnapshot {

  KvLayout layout();

  /** The tokens whose KV this is (the sequence's computed tokens). */
  int[] tokens();

  int blockCount();

  /** Token slots block {@code index} carries: the block size, fewer in the last block. */
  int slots(int index);

  /** Bytes of block {@code index}'s payload. */
  int payloadBytes(int index);

  /** Writes block {@code index}'s payload at {@code destination}'s position, advancing it. */
  void readBlock(int index, ByteBuffer destination);

  /**
   * Tokens from the first whose KV of {@code layer} is computed and may be read: every token of
   * a snapshot of a computed sequence. Any thread; it only grows.
   */
  int readyTokens(int layer);

  /** Whether layer {@code layer} of block {@code index} is computed, so may be read. Any thread. */
  default boolean isComputed(int index, int layer) {
    return readyTokens(layer) >= index * layout().blockSize() + slots(index);
  }

  /** Bytes of one layer of block {@code index}'s payload (its components' runs in that layer). */
  int layerPayloadBytes(int index);

  /**
   * Writes layer {@code layer} of block {@code index} (that layer's part of its payload) at
   * {@code destination}'s position, advancing it.
   */
  void readBlockLayer(int index, int layer, ByteBuffer destination);
}
