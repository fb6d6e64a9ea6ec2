package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** KV read layer by layer while the engine computes it, into another engine. */
class StreamedKvExportTest {

  /**
   * A 40-token prompt in passes of 16 tokens: each layer of each block is copied as soon as the
   * progress says it is computed, from the engine thread's callback, and the receiver then
   * generates what the sender would.
   */
  @Test
  void layersImportedAsTheyAreComputedGenerateAsTheSenderWould() {
    EngineOptions options = Engines.aidreamsOptions().maxBatchTokens(16);
    SamplingParams greedy = SamplingParams.greedy(20);
    int[] prompt = new int[40];
    for (int i = 0; i < prompt.length; i++) {
      prompt[i] = i == 0 ? Engines.BOS : 3 + (i * 7) % 400;
    }
    try (Engine sender = Engines.open(options); Engine receiver = Engines.aidreams()) {
      Generation alone = Engines.generateAlone(receiver, prompt, greedy);
      receiver.release(alone.sequence());

      Sequence prefilling = sender.allocate(prompt);
      List<String> copied = new ArrayList<>();
      KvImport[] target = new KvImport[1];
      KvSnapshot[] snapshot = new KvSnapshot[1];
      boolean[][] done = new boolean[3][sender.layout().layers()];
      List<Integer> lastLayerReadyAtEachCall = new ArrayList<>();
      snapshot[0] = sender.exportKvAsComputed(prefilling, () -> {
        KvSnapshot s = snapshot[0];
        lastLayerReadyAtEachCall.add(s.readyTokens(s.layout().layers() - 1));
        for (int layer = 0; layer < s.layout().layers(); layer++) {
          for (int block = 0; block < s.blockCount(); block++) {
            int end = block * s.layout().blockSize() + s.slots(block);
            if (!done[block][layer] && s.readyTokens(layer) >= end) {
              ByteBuffer bytes = ByteBuffer.allocate(s.layerPayloadBytes(block));
              s.readBlockLayer(block, layer, bytes);
              target[0].writeBlockLayer(block, layer, ByteChain.of(bytes.flip()));
              done[block][layer] = true;
              copied.add(block + "/" + layer);
            }
          }
        }
      });
      assertEquals(3, snapshot[0].blockCount());
      assertEquals(0, snapshot[0].readyTokens(0));
      assertThrows(IllegalStateException.class,
          () -> snapshot[0].readBlockLayer(0, 0, ByteBuffer.allocate(1 << 16)));
      target[0] = receiver.beginImport(snapshot[0].layout(), snapshot[0].tokens());
      sender.step(List.of(prefilling));

      int layers = sender.layout().layers();
      assertEquals(3 * layers, copied.size());
      // layer 0 of block 0 left before the last layer of that pass was computed
      assertEquals("0/0", copied.get(0));
      assertEquals(0, lastLayerReadyAtEachCall.get(0));
      assertTrue(lastLayerReadyAtEachCall.size() >= 3 * layers - 1,
          "one progress call per layer and pass: " + lastLayerReadyAtEachCall.size());

      int first = new Generation(sender, prefilling, greedy,
          new Sampler(greedy, sender.info().vocabSize())).sampleNext();
      Sequence imported = target[0].finish();
      Generation continued = new Generation(receiver, imported, greedy,
          new Sampler(greedy, receiver.info().vocabSize()));
      int token = first;
      while (continued.accept(token).finish() == null) {
        receiver.append(imported, token);
        receiver.step(List.of(imported));
        token = continued.sampleNext();
      }
      assertArrayEquals(alone.outputTokens(), continued.outputTokens());
      receiver.release(imported);
      sender.release(prefilling);
      assertEquals(0, receiver.kvStats().usedBlocks());
    }
  }

  @Test
  void aLayerWrittenTwiceFailsTheImportAndFreesItsBlocks() {
    try (Engine sender = Engines.aidreams(); Engine receiver = Engines.aidreams()) {
      Sequence prefilled = sender.allocate(new int[] {Engines.BOS, 5, 6});
      sender.step(List.of(prefilled));
      KvSnapshot snapshot = sender.exportKv(prefilled);
      KvImport target = receiver.beginImport(snapshot.layout(), snapshot.tokens());
      ByteBuffer layer = ByteBuffer.allocate(snapshot.layerPayloadBytes(0));
      snapshot.readBlockLayer(0, 1, layer);
      target.writeBlockLayer(0, 1, ByteChain.of(layer.flip()));
      KvTransferException e = assertThrows(KvTransferException.class,
          () -> target.writeBlockLayer(0, 1, ByteChain.of(layer.rewind())));
      assertEquals(KvTransferException.Reason.MALFORMED, e.reason());
      assertEquals(0, receiver.kvStats().usedBlocks());
      sender.release(prefilled);
    }
  }
}
