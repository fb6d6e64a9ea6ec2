package io.duet.engine.spi;

import io.duet.engine.EngineOptions;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A model architecture the engine can run: it recognizes its checkpoints and opens them. The
 * engine around it (paged KV cache, prefix caching, batching, sampling, KV export and import)
 * is shared by every architecture.
 *
 * <p>Architectures are found with {@link java.util.ServiceLoader}: an implementation is listed
 * in a {@code META-INF/services/io.duet.engine.spi.Architecture} file of its jar, and is then
 * chosen by {@link #name()} ({@code model.architecture}, {@link EngineOptions#architecture}) or,
 * when none is named, as the one that {@link #recognizes} the model.
 */
public interface Architecture {

  /** The name configurations use, e.g. {@code llama2c}. */
  String name();

  /**
   * Whether {@code model} looks like a checkpoint of this architecture. Cheap (a header read at
   * most) and false, not an exception, for anything else, including a missing file.
   */
  boolean recognizes(Path model);

  /**
   * Whether {@link #open} needs {@link EngineOptions#modelPath}; an architecture that makes its
   * model up (the simulated engine) takes the path as optional.
   */
  default boolean readsModelFile() {
    return true;
  }

  /**
   * Opens the checkpoint {@link EngineOptions#modelPath} (and tokenizer) as the options say.
   *
   * @throws io.duet.engine.ModelFormatException naming the file and the problem when it cannot
   *     be run
   */
  LoadedModel open(EngineOptions options) throws IOException;
}
