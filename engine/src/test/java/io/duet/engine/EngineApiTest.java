package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.llama.Llama2cArchitecture;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the engine API promises whatever the architecture: the model's description, several
 * logits rows from one step, the block-level KV export and import, and the choice of an
 * architecture.
 */
class EngineApiTest {

  @Test
  void theModelDescribesItself() {
    try (Engine engine = Engines.aidreams()) {
      ModelInfo info = engine.info();
      assertEquals(Llama2cArchitecture.NAME, info.architecture());
      assertEquals(512, info.vocabSize());
      assertEquals(128, info.contextLength());
      assertEquals(Engines.BOS, info.bosToken());
      assertTrue(info.isEndToken(Engines.BOS) && info.isEndToken(Engines.EOS));
      assertEquals("llama2", info.chatTemplate());
      KvLayout layout = engine.layout();
      assertEquals(List.of(new KvComponent("k", KvComponent.F32, 64, 4),
          new KvComponent("v", KvComponent.F32, 64, 4)), layout.components());
      assertEquals(2L * 4 * 64 * Float.BYTES, layout.bytesPerToken());
      assertTrue(layout.fingerprint().endsWith("/L4/k:f32[4x16],v:f32[4x16]/B16"),
          layout.fingerprint());
    }
  }

  /** Speculative decoding's verification pass: one step, a row of logits per appended token. */
  @Test
  void oneStepOverSeveralAppendedTokensLeavesTheLogitsOfEachAsTokenByTokenSteps() {
    try (Engine engine = Engines.stories()) {
      int[] prompt = {Engines.BOS, 403, 407, 261, 378, 290};
      int[] drafts = {300, 412, 278, 500};
      Sequence oneByOne = engine.allocate(prompt);
      engine.step(List.of(oneByOne));
      float[][] expected = new float[drafts.length][];
      for (int i = 0; i < drafts.length; i++) {
        engine.append(oneByOne, drafts[i]);
        engine.step(List.of(oneByOne));
        expected[i] = oneByOne.logits().clone();
      }
      Sequence together = engine.allocate(prompt);
      engine.step(List.of(together));
      engine.append(together, drafts, drafts.length);
      engine.step(List.of(together));
      assertEquals(drafts.length, together.logitRows());
      for (int i = 0; i < drafts.length; i++) {
        assertArrayEquals(expected[i], together.logits(i), "row " + i);
      }
      assertArrayEquals(expected[drafts.length - 1], together.logits());
      engine.append(together, drafts[0]);
      engine.step(List.of(together));
      assertEquals(1, together.logitRows(), "a plain append asks for one row again");
      engine.release(oneByOne);
      engine.release(together);
    }
  }

  @Test
  void aBlockPayloadOfTheWrongSizeIsRefusedAndTheImportFreesItsBlocks() {
    try (Engine sender = Engines.aidreams(); Engine receiver = Engines.aidreams()) {
      Sequence prefilled = sender.allocate(new int[40]);
      sender.step(List.of(prefilled));
      KvSnapshot snapshot = sender.exportKv(prefilled);
      assertEquals(3, snapshot.blockCount());
      assertEquals(8, snapshot.slots(2));
      assertEquals(8 * sender.layout().bytesPerToken(), snapshot.payloadBytes(2));

      KvImport target = receiver.beginImport(snapshot.layout(), snapshot.tokens());
      assertEquals(3, receiver.kvStats().usedBlocks());
      ByteBuffer wrong = ByteBuffer.allocate(snapshot.payloadBytes(0) - 4);
      KvTransferException e = assertThrows(KvTransferException.class,
          () -> target.writeBlock(0, ByteChain.of(wrong)));
      assertEquals(KvTransferException.Reason.MALFORMED, e.reason());
      assertEquals(0, receiver.kvStats().usedBlocks());

      KvImport partial = receiver.beginImport(snapshot.layout(), snapshot.tokens());
      ByteBuffer block = ByteBuffer.allocate(snapshot.payloadBytes(0));
      snapshot.readBlock(0, block);
      partial.writeBlock(0, ByteChain.of(block.flip()));
      e = assertThrows(KvTransferException.class, partial::finish);
      assertEquals(KvTransferException.Reason.TRUNCATED, e.reason());
      assertEquals(0, receiver.kvStats().usedBlocks());
      sender.release(prefilled);
    }
  }

  @Test
  void anImportOfAnotherLayoutIsRefusedBeforeAnythingIsAllocated() {
    try (Engine sender = Engines.aidreams(); Engine receiver = Engines.stories()) {
      Sequence prefilled = sender.allocate(new int[] {Engines.BOS, 5, 6});
      sender.step(List.of(prefilled));
      KvSnapshot snapshot = sender.exportKv(prefilled);
      KvTransferException e = assertThrows(KvTransferException.class,
          () -> receiver.beginImport(snapshot.layout(), snapshot.tokens()));
      assertEquals(KvTransferException.Reason.FINGERPRINT_MISMATCH, e.reason());
      assertEquals(0, receiver.kvStats().usedBlocks());
      sender.release(prefilled);
    }
  }

  @Test
  void anArchitectureIsChosenByNameOrByRecognizingTheFile(@TempDir Path dir) throws IOException {
    EngineOptions aidreams = Engines.aidreamsOptions();
    try (Engine named = Engine.open(aidreams.architecture(Llama2cArchitecture.NAME))) {
      assertEquals(Llama2cArchitecture.NAME, named.info().architecture());
    }
    ModelFormatException unknown = assertThrows(ModelFormatException.class,
        () -> Engine.open(Engines.aidreamsOptions().architecture("gpt-17")));
    assertTrue(unknown.getMessage().contains("gpt-17")
        && unknown.getMessage().contains(Llama2cArchitecture.NAME), unknown.getMessage());

    Path notAModel = Files.writeString(dir.resolve("notes.txt"), "just some text");
    ModelFormatException unrecognized = assertThrows(ModelFormatException.class,
        () -> Engine.open(Engines.aidreamsOptions().modelPath(notAModel).tokenizerPath(null)));
    assertTrue(unrecognized.getMessage().contains("notes.txt")
        && unrecognized.getMessage().contains("model.architecture"), unrecognized.getMessage());
  }
}
