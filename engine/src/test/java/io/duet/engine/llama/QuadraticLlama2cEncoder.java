package io.duet.engine.llama;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@link Llama2cTokenizer#encode}'s former merge loop, kept as the reference the priority-queue
 * merge must equal: like run.c it rescans every pair after each merge (quadratic in the text
 * length), keeping only each pair's lookup between passes.
 */
public final class QuadraticLlama2cEncoder {

  private static final float NO_MERGE_SCORE = -1e10f;
  private static final int BOS = 1;
  private static final int BYTE_FALLBACK_OFFSET = 3;

  private final float[] scores;
  private final String[] pieces;
  private final Map<String, Integer> idsByPiece = new HashMap<>();

  public QuadraticLlama2cEncoder(List<byte[]> pieceBytes, float[] scores) {
    this.scores = scores;
    this.pieces = new String[scores.length];
    for (int id = 0; id < scores.length; id++) {
      pieces[id] = new String(pieceBytes.get(id), StandardCharsets.ISO_8859_1);
      idsByPiece.putIfAbsent(pieces[id], id);
    }
  }

  /** The reference for a llama2.c tokenizer file; its size gives the vocabulary. */
  public static QuadraticLlama2cEncoder load(Path path) throws IOException {
    ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
    in.getInt();
    List<byte[]> pieces = new ArrayList<>();
    List<Float> scores = new ArrayList<>();
    while (in.hasRemaining()) {
      scores.add(in.getFloat());
      byte[] piece = new byte[in.getInt()];
      in.get(piece);
      pieces.add(piece);
    }
    float[] scoreArray = new float[scores.size()];
    for (int i = 0; i < scoreArray.length; i++) {
      scoreArray[i] = scores.get(i);
    }
    return new QuadraticLlama2cEncoder(pieces, scoreArray);
  }

  public int[] encode(String text, boolean bos) {
    byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
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
      int end = start + 1;
      while (end < utf8.length && end - start < 4 && (utf8[end] & 0xC0) == 0x80) {
        end++;
      }
      count = appendCodepoint(Arrays.copyOfRange(utf8, start, end), tokens, count);
      start = end;
    }
    count = mergePairs(tokens, count);
    return Arrays.copyOf(tokens, count);
  }

  private int appendCodepoint(byte[] codepoint, int[] tokens, int count) {
    Integer id = idsByPiece.get(new String(codepoint, StandardCharsets.ISO_8859_1));
    if (id != null) {
      tokens[count++] = id;
      return count;
    }
    for (byte b : codepoint) {
      tokens[count++] = (b & 0xFF) + BYTE_FALLBACK_OFFSET;
    }
    return count;
  }

  private int mergePairs(int[] tokens, int count) {
    if (count < 2) {
      return count;
    }
    int[] mergeIds = new int[count - 1];
    for (int i = 0; i < count - 1; i++) {
      mergeIds[i] = pairId(tokens[i], tokens[i + 1]);
    }
    while (true) {
      float bestScore = NO_MERGE_SCORE;
      int bestIdx = -1;
      for (int i = 0; i < count - 1; i++) {
        int id = mergeIds[i];
        if (id != -1 && scores[id] > bestScore) {
          bestScore = scores[id];
          bestIdx = i;
        }
      }
      if (bestIdx == -1) {
        return count;
      }
      tokens[bestIdx] = mergeIds[bestIdx];
      System.arraycopy(tokens, bestIdx + 2, tokens, bestIdx + 1, count - bestIdx - 2);
      int pairsAfter = count - bestIdx - 3;
      if (pairsAfter > 0) {
        System.arraycopy(mergeIds, bestIdx + 2, mergeIds, bestIdx + 1, pairsAfter);
      }
      count--;
      if (bestIdx > 0) {
        mergeIds[bestIdx - 1] = pairId(tokens[bestIdx - 1], tokens[bestIdx]);
      }
      if (bestIdx < count - 1) {
        mergeIds[bestIdx] = pairId(tokens[bestIdx], tokens[bestIdx + 1]);
      }
    }
  }

  private int pairId(int left, int right) {
    return idsByPiece.getOrDefault(pieces[left] + pieces[right], -1);
  }
}
