package io.duet.engine;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;

/** Engines over the shared test models, sized small. */
final class Engines {

  private Engines() {
  }

  static EngineOptions aidreamsOptions() {
    return new EngineOptions().modelPath(TestFiles.shared("models/aidreams260K.bin"))
        .tokenizerPath(TestFiles.shared("models/aidreams260K.tok512.bin"))
        .kvBlocks(256).maxSequences(16).maxBatchTokens(256).threads(2);
  }

  static Engine aidreams() {
    return open(aidreamsOptions());
  }

  /** stories260K: grouped-query attention (8 heads, 4 KV heads), driven by token ids. */
  static Engine stories() {
    return open(new EngineOptions().modelPath(TestFiles.shared("models/stories260K.bin"))
        .kvBlocks(256).maxSequences(16).maxBatchTokens(256).threads(2));
  }

  static Engine open(EngineOptions options) {
    try {
      return Engine.open(options);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Path model(Engine engine) {
    return engine.model().path();
  }

  /**
   * Runs one generation by hand on the engine's own primitives, the sequence alone in every
   * step; returns it finished, its sequence still allocated. What any batch must reproduce.
   */
  static Generation generateAlone(Engine engine, int[] prompt, SamplingParams params) {
    Sequence sequence = engine.allocate(prompt);
    Generation generation = new Generation(engine, sequence, params,
        new Sampler(params, engine.config().vocabSize()));
    engine.step(List.of(sequence));
    int token = generation.sampleNext();
    while (generation.accept(token).finish() == null) {
      engine.append(sequence, token);
      engine.step(List.of(sequence));
      token = generation.sampleNext();
    }
    return generation;
  }
}
