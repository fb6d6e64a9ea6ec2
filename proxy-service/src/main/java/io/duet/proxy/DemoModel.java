package io.duet.proxy;

import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * The built-in demo model that {@code java -jar proxy-service.jar} serves when no model is
 * configured: a tiny Llama-shaped checkpoint with random weights (its text is noise) and a
 * character-level tokenizer, written to a temporary directory at start-up. It exists so that
 * the whole PD pipeline can be tried without any files; real weights come from
 * {@code --model}/{@code --tokenizer} or {@code MODEL_PATH}/{@code TOKENIZER_PATH}.
 */
public final class DemoModel {

  /** The name clients use for it unless configured otherwise. */
  public static final String SERVED_NAME = "duet-demo-random";

  private static final int DIM = 64;
  private static final int HIDDEN = 176;
  private static final int LAYERS = 2;
  private static final int HEADS = 4;
  private static final int SEQ_LEN = 512;
  private static final int FIRST_CHAR = 0x20;
  private static final int LAST_CHAR = 0x7E;
  /** unk, BOS, EOS, 256 byte tokens, then the printable ASCII characters. */
  private static final int VOCAB = 3 + 256 + (LAST_CHAR - FIRST_CHAR + 1);

  /** The written files. */
  public record Written(Path model, Path tokenizer) {
  }

  private DemoModel() {
  }

  /** Writes the demo checkpoint and tokenizer into {@code directory}. */
  public static Written write(Path directory) throws IOException {
    Path model = directory.resolve("duet-demo-random.bin");
    Path tokenizer = directory.resolve("duet-demo-random.tokenizer.bin");
    writeModel(model, new Random(2026));
    writeTokenizer(tokenizer);
    return new Written(model, tokenizer);
  }

  private static void writeModel(Path path, Random random) throws IOException {
    try (OutputStream file = Files.newOutputStream(path);
        DataOutputStream out = new DataOutputStream(new BufferedOutputStream(file, 1 << 16))) {
      // A negative vocab size marks an unshared classifier (see below).
      for (int v : new int[] {DIM, HIDDEN, LAYERS, HEADS, HEADS, -VOCAB, SEQ_LEN}) {
        out.write(le(v));
      }
      floats(out, random, VOCAB * DIM, DIM);
      ones(out, LAYERS * DIM);
      floats(out, random, 4 * LAYERS * DIM * DIM, DIM);
      ones(out, LAYERS * DIM);
      floats(out, random, LAYERS * HIDDEN * DIM, DIM);
      floats(out, random, LAYERS * DIM * HIDDEN, HIDDEN);
      floats(out, random, LAYERS * HIDDEN * DIM, DIM);
      ones(out, DIM);
      zeros(out, SEQ_LEN * (DIM / HEADS));
      // Classifier: only printable characters get logits, and large ones (a spread of several
      // units), so that sampling almost never leaves them and the noise stays readable.
      for (int token = 0; token < VOCAB; token++) {
        if (token >= 259) {
          uniform(out, random, DIM, 1.5f);
        } else {
          zeros(out, DIM);
        }
      }
    }
  }

  private static void writeTokenizer(Path path) throws IOException {
    try (OutputStream file = Files.newOutputStream(path);
        DataOutputStream out = new DataOutputStream(new BufferedOutputStream(file))) {
      out.write(le(8));
      piece(out, "<unk>");
      piece(out, "\n<s>\n");
      piece(out, "\n</s>\n");
      for (int b = 0; b < 256; b++) {
        piece(out, String.format("<0x%02X>", b));
      }
      for (int c = FIRST_CHAR; c <= LAST_CHAR; c++) {
        piece(out, String.valueOf((char) c));
      }
    }
  }

  private static void piece(DataOutputStream out, String text) throws IOException {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    out.write(le(Float.floatToIntBits(0f)));
    out.write(le(bytes.length));
    out.write(bytes);
  }

  private static void floats(DataOutputStream out, Random random, int count, int fanIn)
      throws IOException {
    uniform(out, random, count, (float) (0.5 / Math.sqrt(fanIn)));
  }

  private static void uniform(DataOutputStream out, Random random, int count, float bound)
      throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(4 * count).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < count; i++) {
      buffer.putFloat((random.nextFloat() * 2 - 1) * bound);
    }
    out.write(buffer.array());
  }

  private static void ones(DataOutputStream out, int count) throws IOException {
    for (int i = 0; i < count; i++) {
      out.write(le(Float.floatToIntBits(1f)));
    }
  }

  private static void zeros(DataOutputStream out, int count) throws IOException {
    out.write(new byte[4 * count]);
  }

  private static byte[] le(int value) {
    return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(value).array();
  }
}
