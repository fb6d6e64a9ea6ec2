package io.duet.engine.sim;

import java.nio.charset.StandardCharsets;

/**
 * What the simulated model "says": lorem-ipsum words one byte at a time, the next word picked
 * from a hash of everything before it, so that text is deterministic for a prompt (and a seed)
 * and plainly no model's. A cursor names the byte the model expects next: a word and a byte of
 * it. A token that is the expected byte moves the cursor on; any other token (a prompt's, or a
 * sampled alternative) starts a new word.
 */
final class PseudoText {

  private static final byte[][] WORDS = words("lorem ipsum dolor sit amet, consectetur "
      + "adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. ut "
      + "enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea "
      + "commodo consequat. duis aute irure dolor in reprehenderit in voluptate velit esse "
      + "cillum dolore eu fugiat nulla pariatur. excepteur sint occaecat cupidatat non proident, "
      + "sunt in culpa qui officia deserunt mollit anim id est laborum.");
  /** Bytes of a cursor given to the byte index; words are shorter than this. */
  private static final int BYTE_BITS = 5;

  private PseudoText() {
  }

  private static byte[][] words(String text) {
    String[] split = text.split(" ");
    byte[][] words = new byte[split.length][];
    for (int i = 0; i < split.length; i++) {
      // each word brings the space before it, so that words follow a prompt's last one apart
      words[i] = (" " + split[i]).getBytes(StandardCharsets.US_ASCII);
      if (words[i].length >= 1 << BYTE_BITS) {
        throw new IllegalStateException("word too long: " + split[i]);
      }
    }
    return words;
  }

  /** The cursor of the first byte of the word {@code hash} picks. */
  static int startWord(int hash) {
    return Math.floorMod(hash, WORDS.length) << BYTE_BITS;
  }

  /** The byte {@code cursor} expects. */
  static int expected(int cursor) {
    return WORDS[cursor >>> BYTE_BITS][cursor & ((1 << BYTE_BITS) - 1)] & 0xff;
  }

  /**
   * The cursor after {@code token} was read at {@code cursor} (negative: none expected yet),
   * with {@code hash} the hash of the text up to and with it.
   */
  static int next(int cursor, int token, int hash) {
    if (cursor < 0 || token != expected(cursor)) {
      return startWord(hash);
    }
    int word = cursor >>> BYTE_BITS;
    int next = (cursor & ((1 << BYTE_BITS) - 1)) + 1;
    return next < WORDS[word].length ? (word << BYTE_BITS) | next : startWord(hash);
  }
}
