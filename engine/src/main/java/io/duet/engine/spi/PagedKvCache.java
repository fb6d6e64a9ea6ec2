package io.duet.engine.spi;

import io.duet.engine.KvComponent;
import java.util.List;

/**
 * The engine's paged KV cache as a forward pass reads and writes it: one float array per
 * layer; in it, block after block; in a block, the {@link KvComponent}s one after another; in a
 * component, its runs one after another; in a run, slot after slot, {@code runWidth} values
 * each. So the values a run holds for a block are one contiguous range.
 */
public interface PagedKvCache {

  int blockSize();

  List<KvComponent> components();

  /** The storage of layer {@code layer}. */
  float[] layer(int layer);

  /**
   * Where the values of {@code slot} in run {@code run} of component {@code component} of block
   * {@code block} start; the next slot's follow.
   */
  int offset(int block, int component, int run, int slot);
}
