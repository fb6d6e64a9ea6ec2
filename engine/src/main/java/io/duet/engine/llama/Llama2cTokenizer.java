package io.duet.engine.llama;

import io.duet.engine.ModelFormatException;
import io.duet.engine.Tokenizer;
import io.duet.engine.tokenizer.PairMerger;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The llama2.c byte-pair tokenizer ({@code tokenizer.bin}), behaving exactly like llama2.c's
 * {@code run.c}: same encoding (dummy prefix, UTF-8 codepoints with byte fallback, greedy
 * best-score merges) and same decoding (leading-space strip after BOS, {@code <0xXX>} raw bytes).
 *
 * <p>File format, all little-endian: int32 {@code max_token_length}, then for each of the
 * {@code vocabSize} tokens a float32 score, an int32 byte length and that many bytes. The
 * vocabulary size is not in the file; it comes from the model checkpoint header.
 *
 * <p>Pieces are handled as raw bytes throughout: a piece need not be valid UTF-8 on its own. For
 * lookups each piece is held as an ISO-8859-1 string, which maps every byte to exactly one char, so
 * byte-wise equality is string equality.
 *
 * <p>Instances are immutable and safe to share between threads.
 */
public final class Llama2cTokenizer implements Tokenizer {

  /** Beginning-of-sequence token id, as in the Llama 2 sentencepiece vocabulary. */
  public static final int BOS = 1;

  /** End-of-sequence token id, as in the Llama 2 sentencepiece vocabulary. */
  public static final int EOS = 2;

  /** run.c's initial best merge score: a merge whose score is not above it never happens. */
  private static final float NO_MERGE_SCORE = -1e10f;

  /** run.c's byte fallback: raw byte b is token b + 3, after {@code <unk>}, BOS and EOS. */
  private static final int BYTE_FALLBACK_OFFSET = 3;

  private final float[] scores;
  private final String[] pieces;
  private final Map<String, Integer> idsByPiece;
  private final byte[][] decoded;
  private final byte[][] decodedAfterBos;

  private Llama2cTokenizer(float[] scores, byte[][] pieceBytes) {
    int vocabSize = scores.length;
    this.scores = scores;
    this.pieces = new String[vocabSize];
    this.idsByPiece = new HashMap<>(vocabSize * 2);
    this.decoded = new byte[vocabSize][];
    this.decodedAfterBos = new byte[vocabSize][];
    for (int id = 0; id < vocabSize; id++) {
      byte[] piece = pieceBytes[id];
      pieces[id] = new String(piece, StandardCharsets.ISO_8859_1);
      // run.c's bsearch returns an unspecified one of several equal pieces; we pin it to the
      // lowest id so encoding is deterministic. Neither shipped vocabulary has duplicates.
      idsByPiece.putIfAbsent(pieces[id], id);
      decoded[id] = decodePiece(piece);
      boolean stripSpace = piece.length > 0 && piece[0] == ' ';
      decodedAfterBos[id] =
          stripSpace ? decodePiece(Arrays.copyOfRange(piece, 1, piece.length)) : decoded[id];
    }
  }

  /**
   * Reads a llama2.c tokenizer file.
   *
   * @param path the {@code tokenizer.bin} file
   * @param vocabSize the number of tokens, from the model checkpoint header
   * @throws ModelFormatException if the file does not hold exactly {@code vocabSize} well-formed
   *     tokens (too short, impossible lengths, truncated, or trailing bytes), or if {@code
   *     vocabSize} is not positive
   * @throws IOException if the file cannot be read
   */
  public static Llama2cTokenizer load(Path path, int vocabSize) throws IOException {
    if (vocabSize <= 0) {
      throw new ModelFormatException(
          "tokenizer " + path + ": vocabulary size " + vocabSize
              + " (from the model checkpoint) must be positive");
    }
    long fileSize = Files.size(path);
    if (fileSize > Integer.MAX_VALUE - 8) {
      throw new ModelFormatException(
          "tokenizer " + path + ": " + fileSize + " bytes is far too large for a tokenizer file");
    }
    ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
    if (in.remaining() < Integer.BYTES) {
      throw new ModelFormatException(
          "tokenizer " + path + ": file is " + in.remaining()
              + " bytes, shorter than the 4-byte max_token_length header");
    }
    int maxTokenLength = in.getInt();
    // A piece can never be longer than the file holding it.
    if (maxTokenLength < 0 || maxTokenLength > in.capacity()) {
      throw new ModelFormatException(
          "tokenizer " + path + ": header max_token_length " + maxTokenLength
              + " is impossible for a file of " + in.capacity() + " bytes");
    }

    float[] scores = new float[vocabSize];
    byte[][] pieceBytes = new byte[vocabSize][];
    for (int id = 0; id < vocabSize; id++) {
      if (in.remaining() < Float.BYTES + Integer.BYTES) {
        throw truncated(path, id, vocabSize, in.position());
      }
      scores[id] = in.getFloat();
      int length = in.getInt();
      // run.c sizes its merge buffer from max_token_length, so a longer piece means a corrupt file.
      if (length < 0 || length > maxTokenLength) {
        throw new ModelFormatException(
            "tokenizer " + path + ": token " + id + " has length " + length + " at offset "
                + (in.position() - Integer.BYTES) + ", outside 0.." + maxTokenLength
                + " (the header's max_token_length)");
      }
      if (in.remaining() < length) {
        throw truncated(path, id, vocabSize, in.position());
      }
      pieceBytes[id] = new byte[length];
      in.get(pieceBytes[id]);
    }
    if (in.hasRemaining()) {
      throw new ModelFormatException(
          "tokenizer " + path + ": " + in.remaining() + " trailing bytes after the " + vocabSize
              + " tokens the model expects; this is usually the tokenizer of a different model"
              + " (one with a larger vocabulary)");
    }
    return new Llama2cTokenizer(scores, pieceBytes);
  }

  /**
   * Reads a llama2.c tokenizer file on its own, without the checkpoint that gives its vocabulary
   * size: the size is the number of tokens the file holds.
   *
   * @throws ModelFormatException if the file is not a well-formed tokenizer file
   * @throws IOException if the file cannot be read
   */
  public static Llama2cTokenizer load(Path path) throws IOException {
    ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
    int tokens = 0;
    if (in.remaining() >= Integer.BYTES) {
      in.getInt();
      // Count whole tokens; anything malformed is for load(path, size) to report.
      while (in.remaining() >= Float.BYTES + Integer.BYTES) {
        int length = in.getInt(in.position() + Float.BYTES);
        if (length < 0 || length > in.remaining() - Float.BYTES - Integer.BYTES) {
          break;
        }
        in.position(in.position() + Float.BYTES + Integer.BYTES + length);
        tokens++;
      }
    }
    return load(path, Math.max(tokens, 1));
  }

  private static ModelFormatException truncated(Path path, int id, int vocabSize, int offset) {
    return new ModelFormatException(
        "tokenizer " + path + ": truncated, file ends at offset " + offset + " inside token " + id
            + " of the " + vocabSize + " the model expects; if the file is intact, it belongs to a"
            + " model with a smaller vocabulary");
  }

  /** run.c's {@code sscanf(piece, "<0x%02hhX>")}: the exact form {@code <0xXX>} is one raw byte. */
  private static byte[] decodePiece(byte[] piece) {
    if (piece.length == 6
        && piece[0] == '<' && piece[1] == '0' && piece[2] == 'x' && piece[5] == '>') {
      int high = Character.digit(piece[3], 16);
      int low = Character.digit(piece[4], 16);
      if (high >= 0 && low >= 0) {
        return new byte[] {(byte) (high * 16 + low)};
      }
    }
    return piece;
  }

  /**
   * Writes a tokenizer file: one piece (raw bytes) and merge score per token id, in id order.
   * The vocabulary size is not stored; the checkpoint's header gives it.
   */
  public static void write(Path path, List<byte[]> pieces, float[] scores) throws IOException {
    if (pieces.size() != scores.length) {
      throw new IllegalArgumentException(pieces.size() + " pieces but " + scores.length
          + " scores");
    }
    int maxLength = 0;
    int bytes = Integer.BYTES;
    for (byte[] piece : pieces) {
      maxLength = Math.max(maxLength, piece.length);
      bytes += Float.BYTES + Integer.BYTES + piece.length;
    }
    ByteBuffer out = ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
    out.putInt(maxLength);
    for (int id = 0; id < scores.length; id++) {
      out.putFloat(scores[id]).putInt(pieces.get(id).length).put(pieces.get(id));
    }
    Files.write(path, out.array());
  }

  @Override
  public int vocabSize() {
    return scores.length;
  }

  /** The merge score of token {@code id}. */
  public float score(int id) {
    checkId(id);
    return scores[id];
  }

  /**
   * The raw piece of token {@code id} as text, for debugging: its bytes read as UTF-8, with
   * U+FFFD for bytes that are not valid UTF-8 on their own. Byte tokens show as {@code <0xXX>}.
   */
  public String piece(int id) {
    checkId(id);
    return new String(pieces[id].getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
  }

  /**
   * Encodes text exactly as run.c's {@code encode()}: optional BOS; the dummy-prefix token for
   * {@code " "} if the text is not empty; each UTF-8 codepoint as its own token, or as byte tokens
   * ({@code byte + 3}) when the vocabulary lacks it; then, repeatedly, the adjacent pair whose
   * concatenation is in the vocabulary with the highest score is merged (the leftmost such pair on
   * ties) until no pair merges; optional EOS. BOS takes part in merging, as in run.c.
   *
   * <p>Where run.c has no defined behaviour we choose: unlike a C string the text may contain
   * U+0000, which is encoded like any other codepoint; a vocabulary without a {@code " "} piece
   * gets the dummy prefix as a byte token, like any missing codepoint (run.c would use id -1).
   * Unpaired surrogates become {@code '?'}, as in {@link String#getBytes}.
   *
   * @throws IllegalArgumentException if a byte needs fallback but the vocabulary is too small to
   *     hold byte tokens (run.c would index past its vocabulary)
   */
  @Override
  public int[] encode(String text, boolean bos) {
    return encode(text, bos, false);
  }

  /** {@link #encode(String, boolean)}, with EOS appended when {@code eos} is set. */
  public int[] encode(String text, boolean bos, boolean eos) {
    byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
    // At most: BOS, dummy prefix, one token per byte, EOS.
    int[] tokens = new int[utf8.length + 3];
    int count = 0;
    if (bos) {
      tokens[count++] = BOS;
    }
    if (utf8.length > 0) {
      count = appendCodepoint(" ".getBytes(StandardCharsets.ISO_8859_1), tokens, count);
    }
    int start = 0;
    while (start < utf8.length) {
      // Like run.c: a codepoint is any byte plus up to three following continuation bytes.
      int end = start + 1;
      while (end < utf8.length && end - start < 4 && (utf8[end] & 0xC0) == 0x80) {
        end++;
      }
      count = appendCodepoint(Arrays.copyOfRange(utf8, start, end), tokens, count);
      start = end;
    }
    count = mergePairs(tokens, count);
    if (eos) {
      tokens[count++] = EOS;
    }
    return Arrays.copyOf(tokens, count);
  }

  private int appendCodepoint(byte[] codepoint, int[] tokens, int count) {
    Integer id = idsByPiece.get(new String(codepoint, StandardCharsets.ISO_8859_1));
    if (id != null) {
      tokens[count++] = id;
      return count;
    }
    for (byte b : codepoint) {
      int byteId = (b & 0xFF) + BYTE_FALLBACK_OFFSET;
      if (byteId >= scores.length) {
        throw new IllegalArgumentException(
            "cannot encode byte 0x" + Integer.toHexString(b & 0xFF) + ": the vocabulary of "
                + scores.length + " tokens has no byte-fallback token " + byteId);
      }
      tokens[count++] = byteId;
    }
    return count;
  }

  /**
   * run.c's merge loop: merges the adjacent pair whose concatenation is in the vocabulary with the
   * highest score, the leftmost on ties, until none is left. run.c rescans every pair after each
   * merge, which is quadratic in the text length; {@link PairMerger} makes the same merges in the
   * same order from a priority queue.
   */
  private int mergePairs(int[] tokens, int count) {
    return PairMerger.mergeAll(tokens, count, this::pairMerge);
  }

  /** The merge of {@code left} and {@code right}: run.c merges only above its initial score. */
  private long pairMerge(int left, int right) {
    int id = idsByPiece.getOrDefault(pieces[left] + pieces[right], -1);
    if (id == -1 || !(scores[id] > NO_MERGE_SCORE)) {
      return PairMerger.NO_MERGE;
    }
    return PairMerger.merge(~sortableBits(scores[id]), id);
  }

  /**
   * An int that orders as the float does (run.c compares scores with {@code >}, so 0 and -0
   * are equal); the merger takes the lowest priority first, hence the caller's complement.
   */
  private static int sortableBits(float score) {
    int bits = Float.floatToIntBits(score == 0f ? 0f : score);
    return bits ^ ((bits >> 31) & 0x7FFF_FFFF);
  }

  /**
   * The bytes to print for {@code token} when it follows {@code prevToken}, as run.c's {@code
   * decode()}: after BOS a leading space of the piece is dropped, and a piece of the form {@code
   * <0xXX>} is that single raw byte. {@code <0x00>} yields the single byte 0 (run.c, printing a C
   * string, would print nothing; {@link #isPrintable} rejects it either way).
   *
   * <p>The result is precomputed and shared: callers must not modify it.
   */
  @Override
  public byte[] decode(int prevToken, int token) {
    checkId(token);
    return prevToken == BOS ? decodedAfterBos[token] : decoded[token];
  }

  /**
   * run.c's {@code safe_printf} filter: a decoded piece that is a single byte is printed only if
   * it is printable or whitespace in the C locale, so raw control bytes are dropped. Everything
   * else, including the empty piece, passes.
   */
  public static boolean isPrintable(byte[] piece) {
    if (piece.length != 1) {
      return true;
    }
    int b = piece[0] & 0xFF;
    boolean print = b >= 0x20 && b <= 0x7E;
    boolean space = b == ' ' || (b >= '\t' && b <= '\r');
    return print || space;
  }

  private void checkId(int id) {
    if (id < 0 || id >= scores.length) {
      throw new IllegalArgumentException(
          "token id " + id + " is outside the vocabulary of " + scores.length + " tokens");
    }
  }
}
