package io.duet.proxy.it;

import io.duet.engine.llama.Llama2cCheckpoint;
import io.duet.engine.llama.LlamaConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Random;

/**
 * A model the integration tests write: random weights with aidreams260K's vocabulary (so its
 * tokenizer serves it) and a context of {@value #SEQ_LEN} tokens, whose generation to the end
 * takes seconds where aidreams260K's takes a tenth of one. A request of it that ignores the end
 * of sequence runs long enough to be stopped, or to outlive a process, mid-generation.
 */
final class LongContextModel {

  static final int SEQ_LEN = 4096;
  private static final LlamaConfig CONFIG = new LlamaConfig(128, 384, 4, 4, 4, 512, SEQ_LEN,
      true);

  private LongContextModel() {
  }

  /** Writes the checkpoint to {@code file}, the same weights every time. */
  static Path write(Path file) throws IOException {
    Llama2cCheckpoint.write(file, CONFIG, Llama2cCheckpoint.randomWeights(new Random(20_240_607L)));
    return file;
  }
}
