package io.duet.engine.llama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.duet.engine.TestFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The priority-queue merge of {@link Llama2cTokenizer} encodes exactly as the former quadratic
 * loop ({@link QuadraticLlama2cEncoder}) on random vocabularies full of tied, floor and special
 * scores, and on the shipped tokenizers with random text.
 */
class Llama2cMergeEquivalenceTest {

  @TempDir Path tempDir;

  @Test
  void randomVocabulariesWithTiedScores() throws IOException {
    Random random = new Random(3);
    String[] letters = {"a", "b", "c", " ", "é", "猫"};
    float[] scoreChoices = {0f, -0f, 1f, -1f, 2.5f, -1e10f, -1e11f, Float.NaN,
        Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY};
    for (int trial = 0; trial < 300; trial++) {
      List<byte[]> pieces = new ArrayList<>();
      for (String special : new String[] {"<unk>", "\n<s>\n", "\n</s>\n"}) {
        pieces.add(special.getBytes(StandardCharsets.UTF_8));
      }
      for (int b = 0; b < 256; b++) {
        pieces.add(String.format("<0x%02X>", b).getBytes(StandardCharsets.UTF_8));
      }
      for (String letter : letters) {
        if (random.nextInt(4) > 0) { // some letters only exist as byte tokens
          pieces.add(letter.getBytes(StandardCharsets.UTF_8));
        }
      }
      for (int i = random.nextInt(40); i > 0; i--) {
        StringBuilder piece = new StringBuilder();
        for (int length = 2 + random.nextInt(4); length > 0; length--) {
          piece.append(letters[random.nextInt(letters.length)]);
        }
        pieces.add(piece.toString().getBytes(StandardCharsets.UTF_8));
      }
      float[] scores = new float[pieces.size()];
      for (int id = 0; id < scores.length; id++) {
        scores[id] = scoreChoices[random.nextInt(scoreChoices.length)];
      }
      Path file = tempDir.resolve("random" + trial + ".bin");
      Llama2cTokenizer.write(file, pieces, scores);
      Llama2cTokenizer tokenizer = Llama2cTokenizer.load(file, scores.length);
      QuadraticLlama2cEncoder reference = new QuadraticLlama2cEncoder(pieces, scores);
      for (int text = 0; text < 20; text++) {
        String input = randomText(random, letters, 30);
        boolean bos = random.nextBoolean();
        assertArrayEquals(reference.encode(input, bos), tokenizer.encode(input, bos),
            "trial " + trial + " text '" + input + "'");
      }
    }
  }

  @Test
  void shippedTokenizersOnRandomText() throws IOException {
    Random random = new Random(5);
    String[] words = {"Once", " upon", " a", " time", " ", "  ", "\n", "the", "ing", "你好",
        "😀", "Café", "!", ",", "123", "\t", "é", "un", "believ", "able"};
    for (String name : new String[] {"models/tokenizer.bin", "models/aidreams260K.tok512.bin"}) {
      Path path = TestFiles.shared(name);
      Llama2cTokenizer tokenizer = Llama2cTokenizer.load(path);
      QuadraticLlama2cEncoder reference = QuadraticLlama2cEncoder.load(path);
      for (int text = 0; text < 200; text++) {
        String input = randomText(random, words, 80);
        assertArrayEquals(reference.encode(input, true), tokenizer.encode(input, true),
            name + ": '" + input + "'");
      }
    }
  }

  private static String randomText(Random random, String[] atoms, int maxAtoms) {
    StringBuilder text = new StringBuilder();
    for (int i = random.nextInt(maxAtoms); i > 0; i--) {
      text.append(atoms[random.nextInt(atoms.length)]);
    }
    return text.toString();
  }
}
