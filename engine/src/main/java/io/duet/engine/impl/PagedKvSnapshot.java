package io.duet.engine.impl;

import io.duet.engine.KvComponent;
import io.duet.engine.KvLayout;
import io.duet.engine.KvSnapshot;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/** {@link KvSnapshot} of a {@link PagedEngine} sequence: reads its blocks on demand. */
final class PagedKvSnapshot implements KvSnapshot {

  private final KvLayout layout;
  private final PagedKvStorage storage;
  private final int[] tokens;
  private final int[] blocks;

  PagedKvSnapshot(KvLayout layout, PagedKvStorage storage, int[] tokens, int[] blocks) {
    this.layout = layout;
    this.storage = storage;
    this.tokens = tokens;
    int blockSize = storage.blockSize();
    this.blocks = java.util.Arrays.copyOf(blocks, (tokens.length + blockSize - 1) / blockSize);
  }

  @Override
  public KvLayout layout() {
    return layout;
  }

  @Override
  public int[] tokens() {
    return tokens.clone();
  }

  @Override
  public int blockCount() {
    return blocks.length;
  }

  @Override
  public int slots(int index) {
    return BlockPayload.slots(storage, tokens.length, index);
  }

  @Override
  public int payloadBytes(int index) {
    return BlockPayload.bytes(layout, slots(index));
  }

  @Override
  public void readBlock(int index, ByteBuffer destination) {
    int slots = slots(index);
    int bytes = BlockPayload.bytes(layout, slots);
    FloatBuffer out = destination.slice().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    int block = blocks[index];
    for (int l = 0; l < layout.layers(); l++) {
      float[] layer = storage.layer(l);
      for (int c = 0; c < layout.components().size(); c++) {
        KvComponent component = layout.components().get(c);
        int runFloats = slots * component.runWidth();
        for (int run = 0; run < component.runs(); run++) {
          out.put(layer, storage.offset(block, c, run, 0), runFloats);
        }
      }
    }
    destination.position(destination.position() + bytes);
  }
}
