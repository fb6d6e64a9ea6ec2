package io.duet.engine.impl;

import io.duet.engine.KvLayout;
import io.duet.engine.KvSnapshot;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/** {@link KvSnapshot} of a {@link PagedEngine} sequence: reads its blocks on demand. */
final class PagedKvSnapshot extends PagedKvBlocks implements KvSnapshot {

  PagedKvSnapshot(KvLayout layout, PagedKvStorage storage, int[] tokens, int[] blocks) {
    super(layout, storage, tokens, java.util.Arrays.copyOf(blocks,
        (tokens.length + storage.blockSize() - 1) / storage.blockSize()));
  }

  @Override
  public void readBlock(int index, ByteBuffer destination) {
    FloatBuffer out = destination.slice().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    forEachRun(index, out::put);
    destination.position(destination.position() + payloadBytes(index));
  }
}
