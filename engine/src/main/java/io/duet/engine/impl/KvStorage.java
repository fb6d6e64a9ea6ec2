package io.duet.engine.impl;

/**
 * The float storage behind the paged KV cache: one array per layer, holding for every block its
 * keys followed by its values, each head-major ({@code kvHeads x blockSize x headSize}): the
 * keys one attention head reads from a block are one contiguous run, so attention streams
 * through them instead of picking a head's slice out of every position. A block's slice of one
 * layer is a single contiguous run.
 */
public final class KvStorage {

  private final float[][] layers;
  private final int blockSize;
  private final int kvDim;
  private final int kvHeads;
  private final int headSize;
  private final int blockStride;

  public KvStorage(int layerCount, int blocks, int blockSize, int kvHeads, int headSize) {
    int kvDim = kvHeads * headSize;
    long floats = (long) blocks * 2 * blockSize * kvDim;
    if (floats > Integer.MAX_VALUE - 16) {
      throw new IllegalArgumentException("KV cache of " + blocks + " blocks needs " + floats
          + " floats per layer, more than one Java array holds; use fewer blocks");
    }
    this.blockSize = blockSize;
    this.kvDim = kvDim;
    this.kvHeads = kvHeads;
    this.headSize = headSize;
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

  public int headSize() {
    return headSize;
  }

  /**
   * Contiguous runs of one block in one layer: the keys of each KV head, then the values of each.
   * A run holds the block's slots one after another, {@link #headSize} floats each.
   */
  public int runsPerBlock() {
    return 2 * kvHeads;
  }

  /** Where run {@code run} (in {@code [0, runsPerBlock())}) of a block starts. */
  public int runOffset(int block, int run) {
    return block * blockStride + run * blockSize * headSize;
  }

  /** Where the key of {@code slot} for KV head {@code kvHead} starts; the next slot's follows. */
  public int keyOffset(int block, int kvHead, int slot) {
    return runOffset(block, kvHead) + slot * headSize;
  }

  /** As {@link #keyOffset}, for the value. */
  public int valueOffset(int block, int kvHead, int slot) {
    return runOffset(block, kvHeads + kvHead) + slot * headSize;
  }
}
