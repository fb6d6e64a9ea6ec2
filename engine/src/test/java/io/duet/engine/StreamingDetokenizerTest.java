package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.duet.engine.llama.Llama2cTokenizer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class StreamingDetokenizerTest {

  private static Tokenizer llama;

  @BeforeAll
  static void loadTokenizer() throws IOException {
    llama = Llama2cTokenizer.load(TestFiles.shared("models/tokenizer.bin"), 32000);
  }

  /** Llama 2 byte-fallback token for raw byte b. */
  private static int byteToken(int b) {
    return b + 3;
  }

  @Test
  void holdsTwoByteCharacterUntilComplete() {
    StreamingDetokenizer detokenizer = new StreamingDetokenizer(llama, Engines.BOS);
    assertEquals("", detokenizer.accept(byteToken(0xC3)));
    assertEquals("é", detokenizer.accept(byteToken(0xA9)));
    assertEquals("", detokenizer.flush());
  }

  @Test
  void holdsFourByteEmojiUntilComplete() {
    StreamingDetokenizer detokenizer = new StreamingDetokenizer(llama, Engines.BOS);
    assertEquals("", detokenizer.accept(byteToken(0xF0)));
    assertEquals("", detokenizer.accept(byteToken(0x9F)));
    assertEquals("", detokenizer.accept(byteToken(0x98)));
    assertEquals("\uD83D\uDE00", detokenizer.accept(byteToken(0x80)));
  }

  @Test
  void emitsTextAlongsideACompletedCharacter() {
    StreamingDetokenizer detokenizer = new StreamingDetokenizer(llama, 500);
    assertEquals("", detokenizer.accept(byteToken(0xC3)));
    // " Once" after a non-BOS token keeps its space; the pending é completes first.
    assertEquals("é", detokenizer.accept(byteToken(0xA9)));
    assertEquals(" Once", detokenizer.accept(9038));
  }

  @Test
  void stripsLeadingSpaceOfFirstTokenAfterBos() {
    StreamingDetokenizer detokenizer = new StreamingDetokenizer(llama, Engines.BOS);
    assertEquals("Once", detokenizer.accept(9038));
    assertEquals(" upon", detokenizer.accept(2501));
  }

  @Test
  void keepsLeadingSpaceWhenStartingAfterAnotherToken() {
    StreamingDetokenizer detokenizer = new StreamingDetokenizer(llama, 263);
    assertEquals(" Once", detokenizer.accept(9038));
  }

  @Test
  void replacesInvalidBytesAsSoonAsTheyAreKnownInvalid() {
    StreamingDetokenizer detokenizer = new StreamingDetokenizer(llama, Engines.BOS);
    assertEquals("\uFFFD", detokenizer.accept(byteToken(0x80)));
    assertEquals("", detokenizer.accept(byteToken(0xC3)));
    assertEquals("\uFFFDa", detokenizer.accept(byteToken('a')));
    assertEquals("\uFFFD", detokenizer.accept(byteToken(0xFF)));
  }

  @Test
  void flushReplacesAnIncompleteTail() {
    StreamingDetokenizer detokenizer = new StreamingDetokenizer(llama, Engines.BOS);
    assertEquals("", detokenizer.accept(byteToken(0xE4)));
    assertEquals("", detokenizer.accept(byteToken(0xBD)));
    assertEquals("\uFFFD", detokenizer.flush());
    assertEquals("", detokenizer.flush());
  }

  @Test
  void streamedTextEqualsDecodingAllBytesAtOnce() {
    Random random = new Random(42);
    for (int round = 0; round < 200; round++) {
      int prev = random.nextBoolean() ? Engines.BOS : 500;
      StreamingDetokenizer detokenizer = new StreamingDetokenizer(llama, prev);
      ByteArrayOutputStream allBytes = new ByteArrayOutputStream();
      StringBuilder streamed = new StringBuilder();
      for (int i = 0; i < 40; i++) {
        // Mostly byte tokens, from the high half often, so that partial and broken UTF-8 abounds.
        int token =
            switch (random.nextInt(4)) {
              case 0 -> random.nextInt(llama.vocabSize());
              case 1 -> byteToken(random.nextInt(128));
              default -> byteToken(0x80 + random.nextInt(128));
            };
        allBytes.writeBytes(llama.decode(prev, token));
        prev = token;
        streamed.append(detokenizer.accept(token));
      }
      streamed.append(detokenizer.flush());
      String expected = allBytes.toString(StandardCharsets.UTF_8);
      assertEquals(expected, streamed.toString(), "round " + round);
    }
  }

  @Test
  void streamsTheAidreamsGreedyTextExactly() throws IOException {
    Tokenizer aidreams = Llama2cTokenizer.load(TestFiles.shared("models/aidreams260K.tok512.bin"), 512);
    Path greedy = TestFiles.shared("models/aidreams260K.greedy.txt");
    String text = Files.readString(greedy, StandardCharsets.UTF_8);
    int[] tokens = aidreams.encode(text, true);
    StreamingDetokenizer detokenizer = new StreamingDetokenizer(aidreams, Engines.BOS);
    StringBuilder streamed = new StringBuilder();
    for (int i = 1; i < tokens.length; i++) {
      streamed.append(detokenizer.accept(tokens[i]));
    }
    streamed.append(detokenizer.flush());
    assertEquals(text, streamed.toString());
  }
}
