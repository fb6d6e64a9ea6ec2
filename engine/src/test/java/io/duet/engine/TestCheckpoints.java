package io.duet.engine;

import io.duet.engine.llama.Llama2cCheckpoint;
import io.duet.engine.llama.LlamaConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Random;

/**
 * Writes small random llama2.c checkpoints for tests: {@link Llama2cCheckpoint#randomWeights}
 * drawn from one {@code java.util.Random(seed)}, so the same arguments give the same bytes.
 */
public final class TestCheckpoints {

  private TestCheckpoints() {}

  /**
   * Writes a valid random checkpoint to {@code path} (replacing any file there).
   *
   * @return {@code path}, for chaining
   */
  public static Path write(Path path, int dim, int hidden, int layers, int heads, int kvHeads,
      int vocab, int seqLen, boolean shared, long seed) throws IOException {
    Llama2cCheckpoint.write(path, new LlamaConfig(dim, hidden, layers, heads, kvHeads, vocab,
        seqLen, shared), Llama2cCheckpoint.randomWeights(new Random(seed)));
    return path;
  }
}
