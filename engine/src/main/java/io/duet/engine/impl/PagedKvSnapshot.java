package io.duet.engine.impl;

import io.duet.engine.KvLayout;
import io.duet.engine.KvSnapshot;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * {@link KvSnapshot} of a {@link PagedEngine} sequence: reads its blocks on demand, those of a
 * sequence being computed as its {@link KvProgress} allows.
 */
final class PagedKvSnapshot extends PagedKvBlocks implements KvSnapshot {

  /** Null when every token was computed before the snapshot was taken. */
  private final KvProgress progress;

  PagedKvSnapshot(KvLayout layout, PagedKvStorage storage, int[] tokens, int[] blocks,
      KvProgress progress) {
    super(layout, storage, tokens, java.util.Arrays.copyOf(blocks,
        (tokens.length + storage.blockSize() - 1) / storage.blockSize()));
    this.progress = progress;
  }

  @Override
  public int readyTokens(int layer) {
    return progress == null ? tokens.length : progress.readyTokens(layer);
  }

  @Override
  public void readBlock(int index, ByteBuffer destination) {
    FloatBuffer out = destination.slice().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    forEachRun(index, out::put);
    destination.position(destination.position() + payloadBytes(index));
  }

  @Override
  public void readBlockLayer(int index, int layer, ByteBuffer destination) {
    requireComputed(index, layer);
    FloatBuffer out = destination.slice().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    forEachRunOfLayer(index, layer, out::put);
    destination.position(destination.position() + layerPayloadBytes(index));
  }

  /** Throws unless layer {@code layer} of block {@code index} is computed, so may be read. */
  void requireComputed(int index, int layer) {
    if (!isComputed(index, layer)) {
      throw new IllegalStateException("layer " + layer + " of block " + index
          + " is not computed yet");
    }
  }
}
