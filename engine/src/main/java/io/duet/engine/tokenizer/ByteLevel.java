package io.duet.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * GPT-2's byte-level alphabet, as Hugging Face's {@code ByteLevel} pre-tokenizer and decoder use
 * it: each of the 256 byte values is written as one printable character (printable Latin-1 bytes
 * as themselves, the others as U+0100 onwards), so that byte-level BPE vocabularies are strings.
 */
final class ByteLevel {

  private static final char[] CHAR_OF_BYTE = new char[256];
  /** The byte a character stands for, -1 for characters outside the alphabet. */
  private static final int[] BYTE_OF_CHAR = new int[512];

  static {
    Arrays.fill(BYTE_OF_CHAR, -1);
    int extra = 0;
    for (int b = 0; b < 256; b++) {
      boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      char c = printable ? (char) b : (char) (256 + extra++);
      CHAR_OF_BYTE[b] = c;
      BYTE_OF_CHAR[c] = b;
    }
  }

  private ByteLevel() {
  }

  /** The character byte {@code b} is written as. */
  static char charOf(int b) {
    return CHAR_OF_BYTE[b & 0xFF];
  }

  /** The bytes of UTF-8 {@code text}, each written as its character. */
  static String encode(String text) {
    byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
    char[] chars = new char[utf8.length];
    for (int i = 0; i < utf8.length; i++) {
      chars[i] = charOf(utf8[i]);
    }
    return new String(chars);
  }

  /**
   * The bytes {@code token} stands for, as the {@code ByteLevel} decoder reads it: when every
   * character is in the alphabet, the bytes they stand for; otherwise (an added token such as
   * {@code <｜User｜>}) the token's own UTF-8.
   */
  static byte[] decode(String token) {
    byte[] bytes = new byte[token.length()];
    for (int i = 0; i < token.length(); i++) {
      char c = token.charAt(i);
      int b = c < BYTE_OF_CHAR.length ? BYTE_OF_CHAR[c] : -1;
      if (b < 0) {
        return token.getBytes(StandardCharsets.UTF_8);
      }
      bytes[i] = (byte) b;
    }
    return bytes;
  }
}
