package io.duet.proxy.bigram;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

/**
 * The bigram test model's file and the straightforward reference of what it generates: magic,
 * then a {@code VOCAB x VOCAB} table of float32 logits, row = current token.
 */
final class BigramModel {

  static final String ALPHABET = "abcdefghijklmnopqrstuvwxyz ";
  static final int BOS = 1;
  static final int EOS = 2;
  static final int FIRST_CHAR = 3;
  static final int VOCAB = FIRST_CHAR + ALPHABET.length();
  static final int CONTEXT = 256;
  private static final byte[] MAGIC = "DUET-BIGRAM-TEST".getBytes(StandardCharsets.US_ASCII);

  private BigramModel() {
  }

  /** Writes a random table; EOS never wins, so generations run to their length. */
  static Path write(Path path, long seed) throws IOException {
    Random random = new Random(seed);
    ByteBuffer file = ByteBuffer.allocate(MAGIC.length + VOCAB * VOCAB * Float.BYTES)
        .order(ByteOrder.LITTLE_ENDIAN).put(MAGIC);
    for (int row = 0; row < VOCAB; row++) {
      for (int col = 0; col < VOCAB; col++) {
        file.putFloat(col < FIRST_CHAR ? -100f : random.nextFloat() * 4f);
      }
    }
    return Files.write(path, file.array());
  }

  static boolean hasMagic(Path path) throws IOException {
    try (InputStream in = Files.newInputStream(path)) {
      return Arrays.equals(MAGIC, in.readNBytes(MAGIC.length));
    }
  }

  static float[][] table(byte[] file) {
    ByteBuffer in = BigramArchitecture.littleEndian(file).position(MAGIC.length);
    float[][] table = new float[VOCAB][VOCAB];
    for (float[] row : table) {
      for (int col = 0; col < VOCAB; col++) {
        row[col] = in.getFloat();
      }
    }
    return table;
  }

  /** The greedy continuation of {@code prompt}, computed directly from the table. */
  static String greedy(float[][] table, String prompt, int maxTokens) {
    long sum = BOS;
    int token = BOS;
    for (char c : prompt.toCharArray()) {
      token = FIRST_CHAR + ALPHABET.indexOf(c);
      sum += token;
    }
    StringBuilder text = new StringBuilder();
    for (int n = 0; n < maxTokens; n++) {
      float[] bigram = table[token];
      float[] history = table[(int) (sum % VOCAB)];
      int best = 0;
      for (int v = 1; v < VOCAB; v++) {
        if (bigram[v] + 0.25f * history[v] > bigram[best] + 0.25f * history[best]) {
          best = v;
        }
      }
      text.append(ALPHABET.charAt(best - FIRST_CHAR));
      token = best;
      sum += token;
    }
    return text.toString();
  }
}
