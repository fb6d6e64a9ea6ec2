package io.duet.bench.impl;

import io.duet.engine.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Prompts of a chosen length. The serving path takes text (the prefill instance tokenizes it),
 * so a prompt of about {@code n} tokens is built by decoding random token ids back into text:
 * random vocabulary pieces made of ASCII letters (with or without their leading space) are
 * concatenated, the text is encoded, and pieces are added or dropped until the encoding
 * (BOS included) has {@code n} tokens, or the closest length below it when adjacent pieces
 * merge. Every prompt is different, so the prefix cache never turns a prefill into a hit.
 */
public final class Prompts {

  private Prompts() {
  }

  /** Random token ids for the token-id paths: {@code bos} then ids in [3, vocab). */
  public static int[] randomTokens(Random random, int length, int vocabSize, int bos) {
    int[] tokens = new int[length];
    tokens[0] = bos;
    for (int i = 1; i < length; i++) {
      tokens[i] = 3 + random.nextInt(vocabSize - 3);
    }
    return tokens;
  }

  /** {@code count} different texts, each encoding to about {@code tokens} tokens. */
  public static List<String> texts(Tokenizer tokenizer, long seed, int count, int tokens) {
    List<String> pieces = letterPieces(tokenizer);
    Random random = new Random(seed);
    List<String> texts = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      texts.add(text(tokenizer, pieces, random, tokens));
    }
    return texts;
  }

  private static List<String> letterPieces(Tokenizer tokenizer) {
    List<String> pieces = new ArrayList<>();
    for (int id = 3; id < tokenizer.vocabSize(); id++) {
      // the piece as it reads in the middle of a text (not right after BOS)
      String piece = new String(tokenizer.decode(id, id), StandardCharsets.UTF_8);
      String word = piece.startsWith(" ") ? piece.substring(1) : piece;
      if (!word.isEmpty() && word.chars().allMatch(c -> c < 128 && Character.isLetter(c))) {
        pieces.add(piece);
      }
    }
    if (pieces.isEmpty()) {
      throw new IllegalArgumentException("the tokenizer has no plain-letter pieces to build "
          + "prompts from");
    }
    return pieces;
  }

  private static String text(Tokenizer tokenizer, List<String> pieces, Random random, int target) {
    List<String> chosen = new ArrayList<>();
    // Each piece is about one token (pieces can only merge, never split), and BOS plus the
    // dummy-prefix space take about one more: start just below the target and grow.
    int length = 1;
    for (int round = 0; round < 64; round++) {
      for (int add = Math.max(1, target - length); add > 0; add--) {
        chosen.add(pieces.get(random.nextInt(pieces.size())));
      }
      length = tokenizer.encode(String.join("", chosen), true).length;
      if (length >= target) {
        break;
      }
    }
    while (length > target && chosen.size() > 1) {
      chosen.remove(chosen.size() - 1);
      length = tokenizer.encode(String.join("", chosen), true).length;
    }
    return String.join("", chosen);
  }
}
