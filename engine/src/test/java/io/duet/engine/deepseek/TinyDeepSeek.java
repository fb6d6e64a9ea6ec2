package io.duet.engine.deepseek;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Shape;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Storage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * The small DeepSeek-V3 shape of the tests, written as a real checkpoint: hidden 64, 3 layers
 * of which 1 dense, 4 heads, kv_lora_rank 16, 16 routed experts (top 4 of 4 groups, 2 groups
 * chosen) and 1 shared, 1 multi-token prediction module, YaRN; FP8 scales per 16x16 block, so that every matrix has several
 * (and ragged) blocks. Keeps the weights as the engine reads them for the test's reference.
 */
public final class TinyDeepSeek {

  private static final int HIDDEN = 64;
  static final int FP8_BLOCK = 16;

  final ObjectNode config;
  final Map<String, float[]> weights;

  private TinyDeepSeek(ObjectNode config, Map<String, float[]> weights) {
    this.config = config;
    this.weights = weights;
  }

  /** The test shape; {@code qLora} false makes q_lora_rank null. */
  static Shape shape(boolean qLora) {
    return shape(qLora, 1);
  }

  static Shape shape(boolean qLora, int nextTokenLayers) {
    return new Shape(HIDDEN, 3, 1, 4, qLora ? 32 : 0, 16, 16, 8, 16, 96, 32, 16, 4, 4, 2, 1,
        128, 256, nextTokenLayers);
  }

  /** The naive reference model over these weights. */
  NaiveDeepSeek reference() {
    return new NaiveDeepSeek(config, weights);
  }

  static ObjectNode config(boolean qLora, Storage storage) {
    return RandomDeepSeekCheckpoint.config(shape(qLora), storage, FP8_BLOCK);
  }

  /** Writes it into {@code directory}: one safetensors file, or two shards with an index. */
  public static TinyDeepSeek write(Path directory, Storage storage, boolean qLora,
      boolean sharded, long seed) throws IOException {
    return write(directory, storage, shape(qLora), sharded, seed);
  }

  /**
   * Writes a draftable checkpoint (see {@link RandomDeepSeekCheckpoint}): BF16, one file, its
   * MTP module's drafts mostly right.
   */
  static TinyDeepSeek writeDraftable(Path directory, long seed) throws IOException {
    Shape shape = shape(true);
    return new TinyDeepSeek(RandomDeepSeekCheckpoint.config(shape, Storage.BF16, FP8_BLOCK),
        RandomDeepSeekCheckpoint.write(directory, shape, Storage.BF16, FP8_BLOCK, false, seed,
            true));
  }

  /** Writes a checkpoint of {@code shape} (e.g. without MTP module). */
  static TinyDeepSeek write(Path directory, Storage storage, Shape shape, boolean sharded,
      long seed) throws IOException {
    return new TinyDeepSeek(RandomDeepSeekCheckpoint.config(shape, storage, FP8_BLOCK),
        RandomDeepSeekCheckpoint.write(directory, shape, storage, FP8_BLOCK, sharded, seed));
  }
}
