package io.duet.engine;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.List;

/** Engines over the shared test models, sized small. */
public final class Engines {

  /** Beginning and end of a text in the shared models' llama2.c vocabulary. */
  public static final int BOS = 1;
  public static final int EOS = 2;

  private Engines() {
  }

  public static EngineOptions aidreamsOptions() {
    return new EngineOptions().modelPath(TestFiles.shared("models/aidreams260K.bin"))
        .tokenizerPath(TestFiles.shared("models/aidreams260K.tok512.bin"))
        .kvBlocks(256).maxSequences(16).maxBatchTokens(256).threads(2);
  }

  public static Engine aidreams() {
    return open(aidreamsOptions());
  }

  /** stories260K: grouped-query attention (8 heads, 4 KV heads), driven by token ids. */
  public static Engine stories() {
    return open(new EngineOptions().modelPath(TestFiles.shared("models/stories260K.bin"))
        .kvBlocks(256).maxSequences(16).maxBatchTokens(256).threads(2));
  }

  public static Engine open(EngineOptions options) {
    try {
      return Engine.open(options);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Runs one generation by hand on the engine's own primitives, the sequence alone in every
   * step; returns it finished, its sequence still allocated. What any batch must reproduce.
   */
  public static Generation generateAlone(Engine engine, int[] prompt, SamplingParams params) {
    Sequence sequence = engine.allocate(prompt);
    Generation generation = new Generation(engine, sequence, params,
        new Sampler(params, engine.info().vocabSize()));
    engine.step(List.of(sequence));
    int token = generation.sampleNext();
    while (generation.accept(token).finish() == null) {
      engine.append(sequence, token);
      engine.step(List.of(sequence));
      token = generation.sampleNext();
    }
    return generation;
  }

  /**
   * Moves a computed sequence's KV from one engine into another, block by block through one
   * buffer, as a KV transfer does without the wire format; returns the imported sequence.
   */
  public static Sequence transfer(Engine from, Sequence sequence, Engine to) {
    KvSnapshot snapshot = from.exportKv(sequence);
    KvImport target = to.beginImport(snapshot.layout(), snapshot.tokens());
    for (int i = 0; i < snapshot.blockCount(); i++) {
      ByteBuffer block = ByteBuffer.allocate(snapshot.payloadBytes(i));
      snapshot.readBlock(i, block);
      target.writeBlock(i, ByteChain.of(block.flip()));
    }
    return target.finish();
  }
}
