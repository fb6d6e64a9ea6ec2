package io.duet.engine.impl;

import io.duet.engine.KvComponent;
import io.duet.engine.spi.PagedKvCache;
import java.util.List;

/**
 * The float storage behind the paged KV cache, laid out as {@link PagedKvCache} describes: a
 * block's slice of one layer is one contiguous range, and within it each run of each component
 * is contiguous, so attention streams through one head's keys and an export copies whole runs.
 */
public final class PagedKvStorage implements PagedKvCache {

  private final float[][] layers;
  private final int blockSize;
  private final List<KvComponent> components;
  private final int blockStride;
  /** Where each component starts within a block, and the length of one of its runs. */
  private final int[] componentOffset;
  private final int[] runLength;
  private final int[] runWidth;

  public PagedKvStorage(int layerCount, int blocks, int blockSize, List<KvComponent> components) {
    this.blockSize = blockSize;
    this.components = List.copyOf(components);
    int n = components.size();
    componentOffset = new int[n];
    runLength = new int[n];
    runWidth = new int[n];
    int stride = 0;
    for (int c = 0; c < n; c++) {
      KvComponent component = components.get(c);
      if (!KvComponent.F32.equals(component.dtype())) {
        throw new IllegalArgumentException("KV component " + component.describe()
            + ": this cache stores f32 values only");
      }
      componentOffset[c] = stride;
      runWidth[c] = component.runWidth();
      runLength[c] = blockSize * component.runWidth();
      stride += blockSize * component.valuesPerToken();
    }
    this.blockStride = stride;
    long floats = (long) blocks * stride;
    if (floats > Integer.MAX_VALUE - 16) {
      throw new IllegalArgumentException("KV cache of " + blocks + " blocks needs " + floats
          + " floats per layer, more than one Java array holds; use fewer blocks");
    }
    this.layers = new float[layerCount][(int) floats];
  }

  /** Floats one block takes in one layer. */
  public static long floatsPerBlock(int blockSize, List<KvComponent> components) {
    long values = 0;
    for (KvComponent c : components) {
      values += c.valuesPerToken();
    }
    return values * blockSize;
  }

  @Override
  public int blockSize() {
    return blockSize;
  }

  @Override
  public List<KvComponent> components() {
    return components;
  }

  public int layerCount() {
    return layers.length;
  }

  @Override
  public float[] layer(int layer) {
    return layers[layer];
  }

  @Override
  public int offset(int block, int component, int run, int slot) {
    return block * blockStride + componentOffset[component] + run * runLength[component]
        + slot * runWidth[component];
  }
}
