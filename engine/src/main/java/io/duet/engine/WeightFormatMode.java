package io.duet.engine;

/**
 * Whether a checkpoint's compact weights (BF16, FP8 with block scales) stay in their format or
 * become float32 at load. Float32 checkpoints (llama2.c's, F32 safetensors) are read as they are
 * either way, and F16 tensors are always converted. Both give the same tokens.
 *
 * <p>{@link #FLOAT32} is the default because it decodes faster where it fits: on the 2-core
 * machine of docs/performance.md, a DeepSeek-shaped FP8 checkpoint decodes about three times
 * faster converted than in place, a BF16 one 1.5 to 1.7 times, since widening each weight costs
 * the kernels more than the memory bandwidth it saves. {@link #NATIVE} is for when memory is
 * what binds: a quarter of float32's bytes for FP8 matrices, half for BF16, and no conversion at
 * start.
 */
public enum WeightFormatMode {

  /**
   * Kept as the checkpoint stores them, mapped from the file like float32 ones (or copied with
   * {@link WeightStorage#HUGE_PAGES}): an FP8 matrix holds a quarter of float32's bytes and a
   * BF16 one half, and every decode step streams that much less. The kernels widen the weights
   * to float32 as they read them, with results bit for bit those of the float32 path.
   */
  NATIVE,

  /**
   * Converted to float32 once, into off-heap memory: opening reads the whole checkpoint and
   * holds two to four times its weights' bytes.
   */
  FLOAT32
}
