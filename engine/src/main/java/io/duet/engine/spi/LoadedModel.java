package io.duet.engine.spi;

import io.duet.engine.KvComponent;
import io.duet.engine.ModelInfo;
import io.duet.engine.Tokenizer;
import java.nio.file.Path;
import java.util.List;

/** A model an {@link Architecture} has opened: its description and its forward pass. */
public interface LoadedModel extends AutoCloseable {

  ModelInfo info();

  /** Layers that store KV (a drafting module's included). */
  int kvLayers();

  /**
   * Whether the model was opened with a next-token module to draft with
   * ({@link io.duet.engine.EngineOptions#mtp}): its forward passes are then
   * {@link DraftingForwardPass}es and its last KV layer is the module's.
   */
  default boolean drafts() {
    return false;
  }

  /** What one token stores in the KV cache of each layer, in storage order. */
  List<KvComponent> kvComponents();

  /**
   * SHA-256 of the weights (lowercase hex), on which KV layout fingerprints are built: two
   * engines exchange KV only when they run the very same weights. May read every byte of the
   * model the first time; the engine calls it off request paths and remembers it.
   */
  String contentHash();

  /**
   * The files {@link #contentHash} covers, so that the engine can remember the hash across
   * restarts ({@link ContentHashMemo}); empty (the default) when the model has none.
   */
  default List<Path> files() {
    return List.of();
  }

  /** The tokenizer, or null when none was given. */
  Tokenizer tokenizer();

  /** The model file, its architecture and shape, for logs. */
  String description();

  /** Where the weights are: mapped from the file, or copied and where to. */
  String weightsDescription();

  /**
   * A forward pass over this model, writing and reading KV in {@code resources.kv()}, with
   * buffers for batches of {@code resources.maxTokens()} token rows. The engine makes one and
   * calls it from one thread at a time.
   */
  ForwardPass forwardPass(ForwardResources resources);

  /** Lets go of the weights. */
  @Override
  default void close() {
  }
}
