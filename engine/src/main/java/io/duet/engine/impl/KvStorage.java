package io.duet.engine.impl;

/**
 * The float storage behind the paged KV cache: one array per layer, holding for every block its
 * keys ({@code blockSize x kvDim}) followed by its values. A block's slice of one layer is thus a
 * single contiguous run, which is what the KV wire format copies.
 */
public final class KvStorage {

  private final float[][] layers;
  private final int blockSize;
  private final int kvDim;
  private final int blockStride;

  public KvStorage(int layerCount, int blocks, int blockSize, int kvDim) {
    long floats = (long) blocks * 2 * blockSize * kvDim;
    if (floats > Integer.MAX_VALUE - 16) {
      throw new IllegalArgumentException("KV cache of " + blocks + " blocks needs " + floats
          + " floats per layer, more than one Java array holds; use fewer blocks");
    }
    this.blockSize = blockSize;
    this.kvDim = kvDim;
    this.blockStride = 2 * blockSize * kvDim;
    this.layers = new float[layerCount][(int) floats];
  }

  public float[] layer(int layer) {
    return layers[layer];
  }

  public int blockSize() {
    return blockSize;
  }

  public int kvDim() {
    return kvDim;
  }

  /** Floats of one block in one layer: keys then values. */
  public int blockStride() {
    return blockStride;
  }

  public int keyOffset(int block, int slot) {
    return block * blockStride + slot * kvDim;
  }

  public int valueOffset(int block, int slot) {
    return block * blockStride + (blockSize + slot) * kvDim;
  }
}
