package io.duet.engine;

/**
 * What must agree between two engines for KV blocks to move from one to the other: the same
 * weights (content hash), element type, layer count, KV heads, head size and block size.
 */
public record KvLayout(String modelHash, String dtype, int layers, int kvHeads, int headDim,
    int blockSize) {

  public static final String DTYPE_F32 = "f32";

  /** A compact text form, e.g. {@code sha256:1f2e3d4c5b6a/f32/L6/KV6x48/B16}. */
  public String fingerprint() {
    return "sha256:" + modelHash.substring(0, Math.min(12, modelHash.length())) + "/" + dtype
        + "/L" + layers + "/KV" + kvHeads + "x" + headDim + "/B" + blockSize;
  }

  /** Bytes of keys plus values of one token. */
  public long bytesPerToken() {
    return 2L * layers * kvHeads * headDim * Float.BYTES;
  }

  /**
   * Why {@code other} cannot be imported into an engine of this layout, or null when it can.
   */
  public String mismatch(KvLayout other) {
    if (!modelHash.equals(other.modelHash)) {
      return "model hash " + other.modelHash + " differs from this engine's " + modelHash;
    }
    if (!dtype.equals(other.dtype)) {
      return "dtype " + other.dtype + " differs from " + dtype;
    }
    if (layers != other.layers || kvHeads != other.kvHeads || headDim != other.headDim) {
      return "shape L" + other.layers + "/KV" + other.kvHeads + "x" + other.headDim
          + " differs from L" + layers + "/KV" + kvHeads + "x" + headDim;
    }
    if (blockSize != other.blockSize) {
      return "block size " + other.blockSize + " differs from " + blockSize;
    }
    return null;
  }
}
