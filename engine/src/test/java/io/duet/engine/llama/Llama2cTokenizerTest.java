package io.duet.engine.llama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.ModelFormatException;
import io.duet.engine.TestFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Llama2cTokenizerTest {

  private static Llama2cTokenizer llama;
  private static Llama2cTokenizer aidreams;

  @TempDir Path tempDir;

  @BeforeAll
  static void loadTokenizers() throws IOException {
    llama = Llama2cTokenizer.load(TestFiles.shared("models/tokenizer.bin"), 32000);
    aidreams = Llama2cTokenizer.load(TestFiles.shared("models/aidreams260K.tok512.bin"), 512);
  }

  // Expected ids below were produced by llama2.c run.c's encode() compiled with gcc.

  @Test
  void encodesLlamaSentences() {
    assertArrayEquals(
        new int[] {1, 9038, 2501, 263, 931}, llama.encode("Once upon a time", true, false));
    assertArrayEquals(new int[] {1, 15043, 3186}, llama.encode("Hello world", true, false));
    assertArrayEquals(new int[] {15043, 3186, 2}, llama.encode("Hello world", false, true));
  }

  @Test
  void encodesEmptyTextWithoutDummyPrefix() {
    assertArrayEquals(new int[] {1}, llama.encode("", true, false));
    assertArrayEquals(new int[] {1, 2}, llama.encode("", true, true));
    assertArrayEquals(new int[] {}, llama.encode("", false, false));
  }

  @Test
  void encodesMultiByteCodepointsFoundInVocabulary() {
    assertArrayEquals(
        new int[] {1, 315, 28059, 2181, 5000, 1506, 30095, 29880, 1318},
        llama.encode("Café crème brûlée", true, false));
    assertArrayEquals(
        new int[] {1, 29871, 30919, 31076, 30214, 30793, 30967},
        llama.encode("你好，世界", true, false));
  }

  @Test
  void emojiMissingFromVocabularyFallsBackToByteTokens() {
    int[] tokens = llama.encode("I \uD83D\uDE00 emoji \uD83E\uDD99", true, false);
    // U+1F600 is F0 9F 98 80, U+1F999 is F0 9F A6 99: each byte b becomes token b + 3.
    assertArrayEquals(
        new int[] {1, 306, 29871, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3, 953, 29877, 2397, 29871,
            0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3},
        tokens);
  }

  @Test
  void mergesRunsOfSpacesDespiteTheirVeryLowScore() {
    // "  " has score -1e9, above run.c's -1e10 floor; "\n" is not a piece and becomes <0x0A>.
    assertEquals(-1e9f, llama.score(259));
    assertArrayEquals(
        new int[] {1, 259, 1023, 29871, 8162, 13, 1482, 1220, 12, 3891},
        llama.encode("  two  spaces\nnewline\ttab", true, false));
  }

  @Test
  void roundTripsThroughDecode() {
    for (String text :
        new String[] {
          "Once upon a time",
          "Café crème brûlée",
          "I \uD83D\uDE00 emoji \uD83E\uDD99",
          "你好，世界",
          "  two  spaces\nnewline\ttab",
          "tab\tand\u0000nul"
        }) {
      assertEquals(text, decodeAfterBos(llama, llama.encode(text, true, false)), text);
    }
  }

  @Test
  void encodesAidreamsPrompt() {
    assertArrayEquals(
        new int[] {1, 429, 491, 433, 295, 429, 444, 445, 265, 262, 263, 342, 430},
        aidreams.encode("Once upon a time", true, false));
  }

  @Test
  void aidreamsRoundTripsTheGreedyReferenceText() throws IOException {
    Path greedy = TestFiles.shared("models/aidreams260K.greedy.txt");
    String text = Files.readString(greedy, StandardCharsets.UTF_8);
    assertTrue(text.startsWith("Once upon a time"), text);
    int[] tokens = aidreams.encode(text, true, false);
    assertEquals(Llama2cArchitecture.BOS, tokens[0]);
    assertEquals(text, decodeAfterBos(aidreams, tokens));
  }

  @Test
  void decodeStripsLeadingSpaceOnlyAfterBos() {
    assertEquals("Once", ascii(llama.decode(Llama2cArchitecture.BOS, 9038)));
    assertEquals(" Once", ascii(llama.decode(263, 9038)));
    assertEquals(" upon", ascii(llama.decode(9038, 2501)));
    assertEquals(" Once", llama.piece(9038));
  }

  @Test
  void decodeTurnsByteTokensIntoRawBytes() {
    assertEquals("<0xC3>", llama.piece(0xC3 + 3));
    assertArrayEquals(new byte[] {(byte) 0xC3}, llama.decode(500, 0xC3 + 3));
    assertArrayEquals(new byte[] {'\n'}, llama.decode(Llama2cArchitecture.BOS, 13));
    assertArrayEquals(new byte[] {0}, llama.decode(500, 3));
  }

  @Test
  void decodeRejectsIdsOutsideTheVocabulary() {
    assertThrows(IllegalArgumentException.class, () -> llama.decode(1, 32000));
    assertThrows(IllegalArgumentException.class, () -> llama.decode(1, -1));
  }

  @Test
  void reportsVocabularySizeAndScores() {
    assertEquals(32000, llama.vocabSize());
    assertEquals(512, aidreams.vocabSize());
    assertEquals("\n<s>\n", llama.piece(Llama2cArchitecture.BOS));
    assertTrue(llama.score(9038) < 0);
  }

  @Test
  void isPrintableDropsOnlySingleControlBytes() {
    assertTrue(Llama2cTokenizer.isPrintable(new byte[] {'a'}));
    assertTrue(Llama2cTokenizer.isPrintable(new byte[] {'\n'}));
    assertTrue(Llama2cTokenizer.isPrintable(new byte[] {'\t'}));
    assertTrue(Llama2cTokenizer.isPrintable(new byte[] {0x0B}));
    assertTrue(Llama2cTokenizer.isPrintable(new byte[] {'~'}));
    assertTrue(Llama2cTokenizer.isPrintable(new byte[] {0x01, 0x02}));
    assertTrue(Llama2cTokenizer.isPrintable(new byte[] {}));
    assertFalse(Llama2cTokenizer.isPrintable(new byte[] {0}));
    assertFalse(Llama2cTokenizer.isPrintable(new byte[] {0x08}));
    assertFalse(Llama2cTokenizer.isPrintable(new byte[] {0x7F}));
    assertFalse(Llama2cTokenizer.isPrintable(new byte[] {(byte) 0xC3}));
  }

  // Small synthetic vocabularies pin down run.c's merge rules.

  @Test
  void tiedScoresMergeTheLeftmostPair() throws IOException {
    Llama2cTokenizer tokenizer = tokenizer(piece(0, " "), piece(0, "a"), piece(-1, "aa"));
    int[] tokens = tokenizer.encode("aaa", false, false);
    // " ", then "aa" from the first two a's, then the lone third "a".
    assertArrayEquals(new int[] {259, 261, 260}, tokens);
  }

  @Test
  void higherScoringMergeWinsOverAnEarlierPair() throws IOException {
    Llama2cTokenizer tokenizer =
        tokenizer(piece(0, " "), piece(0, "a"), piece(0, "b"), piece(-5, "ab"), piece(-1, "bb"));
    assertArrayEquals(new int[] {259, 260, 263}, tokenizer.encode("abb", false, false));
  }

  @Test
  void mergesScoringAtOrBelowRunCsFloorNeverHappen() throws IOException {
    Llama2cTokenizer tokenizer =
        tokenizer(piece(0, " "), piece(0, "a"), piece(0, "b"), piece(-1e10f, "ab"));
    assertArrayEquals(new int[] {259, 260, 261}, tokenizer.encode("ab", false, false));
  }

  @Test
  void duplicatePiecesResolveToTheLowestId() throws IOException {
    Llama2cTokenizer tokenizer = tokenizer(piece(0, " "), piece(0, "a"), piece(0, "a"));
    assertArrayEquals(new int[] {259, 260}, tokenizer.encode("a", false, false));
  }

  // Broken files.

  @Test
  void rejectsEmptyFile() throws IOException {
    Path file = write(new byte[0]);
    assertFormatError(file, 512, "shorter than the 4-byte");
  }

  @Test
  void rejectsFileTruncatedMidToken() throws IOException {
    byte[] whole = Files.readAllBytes(TestFiles.shared("models/aidreams260K.tok512.bin"));
    Path file = write(Arrays.copyOf(whole, whole.length - 3));
    assertFormatError(file, 512, "truncated");
    assertFormatError(file, 512, "inside token 511");
  }

  @Test
  void rejectsTrailingGarbageAsProbablyTheWrongTokenizer() throws IOException {
    Path file = TestFiles.shared("models/tokenizer.bin");
    ModelFormatException e = assertFormatError(file, 512, "trailing bytes");
    assertTrue(e.getMessage().contains("different model"), e.getMessage());
  }

  @Test
  void rejectsVocabularyLargerThanTheFile() throws IOException {
    assertFormatError(TestFiles.shared("models/aidreams260K.tok512.bin"), 32000, "truncated");
  }

  @Test
  void rejectsNegativeTokenLength() throws IOException {
    ByteBuffer bytes = ByteBuffer.allocate(4 + 4 + 4 + 1).order(ByteOrder.LITTLE_ENDIAN);
    bytes.putInt(1).putFloat(0f).putInt(-7).put((byte) 'a');
    Path file = write(bytes.array());
    assertFormatError(file, 1, "length -7");
  }

  @Test
  void rejectsNegativeMaxTokenLength() throws IOException {
    ByteBuffer bytes = ByteBuffer.allocate(4 + 4 + 4 + 1).order(ByteOrder.LITTLE_ENDIAN);
    bytes.putInt(-1).putFloat(0f).putInt(1).put((byte) 'a');
    assertFormatError(write(bytes.array()), 1, "max_token_length -1");
  }

  @Test
  void rejectsNonPositiveVocabularySize() throws IOException {
    Path file = TestFiles.shared("models/aidreams260K.tok512.bin");
    assertFormatError(file, 0, "must be positive");
    assertFormatError(file, -512, "must be positive");
  }

  private ModelFormatException assertFormatError(Path file, int vocabSize, String problem) {
    ModelFormatException e =
        assertThrows(ModelFormatException.class, () -> Llama2cTokenizer.load(file, vocabSize));
    assertTrue(e.getMessage().contains(problem), e.getMessage());
    assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    return e;
  }

  /** Text of tokens after a leading BOS, decoded as run.c prints them (without its filter). */
  private static String decodeAfterBos(Llama2cTokenizer tokenizer, int[] tokens) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (int i = 1; i < tokens.length; i++) {
      out.writeBytes(tokenizer.decode(tokens[i - 1], tokens[i]));
    }
    return out.toString(StandardCharsets.UTF_8);
  }

  private static String ascii(byte[] bytes) {
    return new String(bytes, StandardCharsets.US_ASCII);
  }

  private record Piece(float score, String text) {}

  private static Piece piece(float score, String text) {
    return new Piece(score, text);
  }

  /**
   * A tokenizer with the 259 standard leading tokens ({@code <unk>}, BOS, EOS, 256 byte tokens)
   * followed by {@code extra}, which therefore get ids 259, 260, ...
   */
  private Llama2cTokenizer tokenizer(Piece... extra) throws IOException {
    ByteArrayOutputStream pieces = new ByteArrayOutputStream();
    int count = 0;
    for (String text : new String[] {"<unk>", "\n<s>\n", "\n</s>\n"}) {
      writePiece(pieces, 0f, text);
      count++;
    }
    for (int b = 0; b < 256; b++) {
      writePiece(pieces, 0f, String.format("<0x%02X>", b));
      count++;
    }
    for (Piece piece : extra) {
      writePiece(pieces, piece.score(), piece.text());
      count++;
    }
    ByteArrayOutputStream file = new ByteArrayOutputStream();
    file.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(16).array());
    file.writeBytes(pieces.toByteArray());
    return Llama2cTokenizer.load(write(file.toByteArray()), count);
  }

  private static void writePiece(ByteArrayOutputStream out, float score, String text) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    ByteBuffer header = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    header.putFloat(score).putInt(bytes.length);
    out.writeBytes(header.array());
    out.writeBytes(bytes);
  }

  private Path write(byte[] bytes) throws IOException {
    Path file = Files.createTempFile(tempDir, "tokenizer", ".bin");
    Files.write(file, bytes);
    return file;
  }
}
