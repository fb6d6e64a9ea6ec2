package io.duet.engine.sim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.ByteChain;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.KvImport;
import io.duet.engine.KvSnapshot;
import io.duet.engine.ModelFormatException;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The simulated engine through the engine API every service uses. */
class SimEngineTest {

  /** No waiting: these tests check what is computed; {@link SimTimingTest} checks the time. */
  private static final Map<String, String> INSTANT = Map.of("time-scale", "0");

  private static Engine open(Map<String, String> parameters) throws IOException {
    return Engine.open(new EngineOptions().architecture(SimArchitecture.NAME)
        .parameters(parameters).threads(1).kvCacheBytes(4L << 20));
  }

  private static String greedy(Engine engine, String prompt, int tokens) {
    return new OfflineGenerator(engine, 4).generate(engine.tokenizer().encode(prompt, true),
        SamplingParams.greedy(tokens)).text();
  }

  @Test
  void itHasDeepSeekV3sKvLayoutScaledDownAndNeedsNoFile() throws IOException {
    try (Engine engine = open(Map.of("kv-scale", "8", "time-scale", "0"))) {
      assertEquals("sim", engine.info().architecture());
      assertEquals(61, engine.layout().layers());
      assertEquals(61L * (64 + 8) * Float.BYTES, engine.layout().bytesPerToken());
      assertTrue(engine.description().model().startsWith("SIMULATED"),
          engine.description().model());
      assertEquals(256, engine.info().routedExperts(), "DeepSeek-V3's routed experts");
    }
  }

  @Test
  void itWritesDeterministicPseudoTextThatDependsOnThePromptAndTheSeed() throws IOException {
    String a;
    try (Engine engine = open(INSTANT)) {
      a = greedy(engine, "how are you?", 60);
      assertEquals(a, greedy(engine, "how are you?", 60), "the same prompt, the same text");
      assertNotEquals(a, greedy(engine, "who are you?", 60));
      assertTrue(a.matches("( [a-z]+[,.]?)+"), "lorem-ipsum words: '" + a + "'");
    }
    try (Engine other = open(Map.of("seed", "7", "time-scale", "0"))) {
      assertNotEquals(a, greedy(other, "how are you?", 60));
    }
  }

  @Test
  void kvImportedIntoAnotherEngineContinuesTheTextAndDamagedKvDoesNot() throws IOException {
    try (Engine prefill = open(INSTANT); Engine decode = open(INSTANT)) {
      int[] prompt = prefill.tokenizer().encode("a prompt of some length, over blocks", true);
      String alone = greedy(prefill, "a prompt of some length, over blocks", 20);

      Sequence prefilled = prefill.allocate(prompt);
      prefill.step(List.of(prefilled));
      int first = Sampler.argmax(prefilled.logits());
      KvSnapshot snapshot = prefill.exportKv(prefilled);
      Sequence imported = transfer(snapshot, decode, false);
      assertEquals(alone, continueGreedy(decode, imported, first, 20));

      Sequence damaged = transfer(snapshot, decode, true);
      assertNotEquals(alone, continueGreedy(decode, damaged, first, 20),
          "the text is read back from the KV: damaged KV shows");
      prefill.release(prefilled);
      decode.release(imported);
      decode.release(damaged);
      assertEquals(0, decode.kvStats().usedBlocks());
    }
  }

  private static Sequence transfer(KvSnapshot snapshot, Engine to, boolean damage) {
    KvImport target = to.beginImport(snapshot.layout(), snapshot.tokens());
    for (int i = 0; i < snapshot.blockCount(); i++) {
      ByteBuffer block = ByteBuffer.allocate(snapshot.payloadBytes(i));
      snapshot.readBlock(i, block);
      if (damage && i == snapshot.blockCount() - 1) {
        // the last latent value this block holds of layer 0: the text state of the last token
        block.putFloat(0, block.getFloat(0) + 1);
        for (int slot = 0; slot < snapshot.slots(i); slot++) {
          int at = slot * 8 * Float.BYTES;
          block.putFloat(at, block.getFloat(at) + 1);
        }
      }
      target.writeBlock(i, ByteChain.of(block.flip()));
    }
    return target.finish();
  }

  private static String continueGreedy(Engine engine, Sequence sequence, int first, int tokens) {
    StringBuilder text = new StringBuilder();
    int token = first;
    for (int i = 0; i < tokens; i++) {
      text.append((char) token);
      engine.append(sequence, token);
      engine.step(List.of(sequence));
      token = Sampler.argmax(sequence.logits());
    }
    return text.toString();
  }

  @Test
  void aParameterFileIsReadAndTheOptionsOverrideIt(@TempDir Path dir) throws IOException {
    Path file = dir.resolve("sim.properties");
    Files.writeString(file, "kv-scale = 16\nlayers = 3\n# a comment\n");
    try (Engine engine = Engine.open(new EngineOptions().architecture("sim").modelPath(file)
        .parameters(Map.of("layers", "5", "time-scale", "0")).threads(1))) {
      assertEquals(5, engine.layout().layers());
      assertEquals(5L * (32 + 4) * Float.BYTES, engine.layout().bytesPerToken());
    }
    Files.writeString(file, "kv-scal = 16\n");
    ModelFormatException unknown = assertThrows(ModelFormatException.class,
        () -> Engine.open(new EngineOptions().architecture("sim").modelPath(file)));
    assertTrue(unknown.getMessage().contains("unknown parameter 'kv-scal'")
        && unknown.getMessage().contains(file.toString()), unknown.getMessage());
    ModelFormatException range = assertThrows(ModelFormatException.class,
        () -> open(Map.of("kv-scale", "5")));
    assertTrue(range.getMessage().contains("kv-scale"), range.getMessage());
  }

  @Test
  void itIsNeverPickedForAFileAndOthersStillNeedTheirs() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Engine.open(new EngineOptions().architecture("llama2c")));
    assertTrue(e.getMessage().contains("no model path"), e.getMessage());
    assertEquals(false, new SimArchitecture().recognizes(Path.of("anything")));
  }

  @Test
  void theByteTokenizerRoundTripsUtf8() {
    ByteTokenizer tokenizer = new ByteTokenizer();
    int[] ids = tokenizer.encode("héllo", true);
    assertEquals(ByteTokenizer.BOS, ids[0]);
    ByteBuffer bytes = ByteBuffer.allocate(16);
    for (int i = 1; i < ids.length; i++) {
      bytes.put(tokenizer.decode(ids[i - 1], ids[i]));
    }
    assertArrayEquals("héllo".getBytes(java.nio.charset.StandardCharsets.UTF_8),
        java.util.Arrays.copyOf(bytes.array(), bytes.position()));
    assertEquals(0, tokenizer.decode(0, ByteTokenizer.EOS).length);
  }
}
