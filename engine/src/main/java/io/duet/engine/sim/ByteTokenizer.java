package io.duet.engine.sim;

import io.duet.engine.Tokenizer;
import java.nio.charset.StandardCharsets;

/**
 * The simulated model's tokenizer: one token per UTF-8 byte (ids 0-255), then BOS and EOS.
 * Chosen over a real vocabulary because it needs no file (a simulated instance starts from the
 * topology file alone), represents any text, and keeps the logits of a step small (258 floats
 * per sequence, where DeepSeek-V3's 129,280 would cost 144 ranks gigabytes). A prompt is about
 * four times as many tokens as with DeepSeek-V3's tokenizer, which the timing model counts as
 * it counts any token.
 */
final class ByteTokenizer implements Tokenizer {

  static final int BOS = 256;
  static final int EOS = 257;
  static final int VOCAB = 258;

  private static final byte[][] BYTES = new byte[VOCAB][];
  private static final byte[] NONE = new byte[0];

  static {
    for (int b = 0; b < 256; b++) {
      BYTES[b] = new byte[] {(byte) b};
    }
    BYTES[BOS] = NONE;
    BYTES[EOS] = NONE;
  }

  @Override
  public int vocabSize() {
    return VOCAB;
  }

  @Override
  public int[] encode(String text, boolean bos) {
    byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
    int offset = bos ? 1 : 0;
    int[] ids = new int[utf8.length + offset];
    if (bos) {
      ids[0] = BOS;
    }
    for (int i = 0; i < utf8.length; i++) {
      ids[i + offset] = utf8[i] & 0xff;
    }
    return ids;
  }

  @Override
  public byte[] decode(int previous, int token) {
    return BYTES[token];
  }
}
