package io.duet.engine;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Turns one sequence's generated tokens into text as they arrive. Tokens decode to bytes ({@link
 * Tokenizer#decode}), and a character may be split across tokens (llama2.c's byte-fallback tokens
 * carry one byte each, byte-level BPE tokens any run of bytes), so the bytes of an incomplete
 * UTF-8 character are held until it completes. Bytes
 * that cannot be valid UTF-8 become U+FFFD as soon as that is certain.
 *
 * <p>No byte is filtered out: unlike run.c's {@code safe_printf} this keeps control characters and
 * multi-byte characters built from byte tokens (see {@link Tokenizer#isPrintable} for run.c's
 * console filter).
 *
 * <p>Not thread-safe: one instance per sequence.
 */
public final class StreamingDetokenizer {

  private final Tokenizer tokenizer;
  private final CharsetDecoder utf8 =
      StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPLACE)
          .onUnmappableCharacter(CodingErrorAction.REPLACE);
  /** Bytes not yet turned into text, kept in write mode between calls. */
  private ByteBuffer pending = ByteBuffer.allocate(64);
  private CharBuffer chars = CharBuffer.allocate(64);
  private int prevToken;

  /**
   * A detokenizer whose first token follows {@code prevToken}; it matters because a piece that
   * follows BOS loses its leading space.
   */
  public StreamingDetokenizer(Tokenizer tokenizer, int prevToken) {
    this.tokenizer = tokenizer;
    this.prevToken = prevToken;
  }

  /**
   * Adds the next token of the sequence and returns the text it completes: possibly empty, never
   * half a character.
   */
  public String accept(int token) {
    byte[] bytes = tokenizer.decode(prevToken, token);
    prevToken = token;
    if (pending.remaining() < bytes.length) {
      pending = grow(pending, pending.position() + bytes.length);
    }
    pending.put(bytes);
    return drain(false);
  }

  /**
   * Adds a token that stands for no text (a control token): nothing is emitted, but the next
   * token follows it (after BOS, a piece loses its leading space).
   */
  public void skip(int token) {
    prevToken = token;
  }

  /**
   * Ends the sequence: returns whatever text is still held, with U+FFFD for an incomplete final
   * character, and resets the UTF-8 state (the previous token is kept).
   */
  public String flush() {
    String text = drain(true);
    utf8.reset();
    return text;
  }

  private String drain(boolean endOfInput) {
    pending.flip();
    // UTF-8 never yields more chars than bytes (U+FFFD replaces at least one byte), so the whole
    // input always fits and the decoder can only stop for lack of input.
    if (chars.capacity() < pending.remaining()) {
      chars = CharBuffer.allocate(pending.remaining() * 2);
    }
    chars.clear();
    CoderResult result = utf8.decode(pending, chars, endOfInput);
    if (endOfInput) {
      result = utf8.flush(chars);
    }
    if (!result.isUnderflow()) {
      throw new IllegalStateException("UTF-8 decoding stopped early: " + result);
    }
    pending.compact();
    chars.flip();
    return chars.toString();
  }

  private static ByteBuffer grow(ByteBuffer buffer, int minCapacity) {
    ByteBuffer bigger = ByteBuffer.allocate(Math.max(minCapacity, buffer.capacity() * 2));
    buffer.flip();
    bigger.put(buffer);
    return bigger;
  }
}
