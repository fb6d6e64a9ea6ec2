package io.duet.engine.tokenizer;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Finds added tokens in text as Hugging Face's {@code AddedVocabulary} does: the leftmost match,
 * the longest at that position; a {@code single_word} token only where no word character touches
 * it; {@code lstrip} and {@code rstrip} take the whitespace on that side into the token.
 */
final class AddedTokens {

  /** An added token as {@code tokenizer.json} describes it. */
  record Token(String content, int id, boolean singleWord, boolean lstrip, boolean rstrip) {
  }

  /** Receives the text cut at the added tokens, in order. */
  interface Sink {
    void text(String text);

    void token(int id);
  }

  private static final Pattern WHITESPACE = Pattern.compile("\\s", Pattern.UNICODE_CHARACTER_CLASS);
  private static final Pattern WORD = Pattern.compile("\\w", Pattern.UNICODE_CHARACTER_CLASS);

  private static final class Node {
    final Map<Character, Node> children = new HashMap<>();
    Token token;
  }

  private final Node root = new Node();

  AddedTokens(List<Token> tokens) {
    for (Token token : tokens) {
      Node node = root;
      for (int i = 0; i < token.content().length(); i++) {
        node = node.children.computeIfAbsent(token.content().charAt(i), c -> new Node());
      }
      node.token = token;
    }
  }

  /** Hands {@code text} to {@code sink} as the (non-empty) text between added tokens and them. */
  void split(String text, Sink sink) {
    int emitted = 0;
    int at = 0;
    while (at < text.length()) {
      Node node = root;
      Token found = null;
      int end = -1;
      for (int i = at; i < text.length(); i++) {
        node = node.children.get(text.charAt(i));
        if (node == null) {
          break;
        }
        if (node.token != null) {
          found = node.token;
          end = i + 1;
        }
      }
      if (found == null) {
        at++;
        continue;
      }
      int start = at;
      // Like the Aho-Corasick iteration HF uses, the search goes on after the match as found.
      at = end;
      if (found.singleWord() && (endsWithWord(text, start) || startsWithWord(text, end))) {
        continue;
      }
      if (found.lstrip()) {
        int spaceStart = start;
        while (spaceStart > 0 && isWhitespace(text.codePointBefore(spaceStart))) {
          spaceStart -= Character.charCount(text.codePointBefore(spaceStart));
        }
        start = Math.max(spaceStart, emitted);
      }
      if (found.rstrip()) {
        while (end < text.length() && isWhitespace(text.codePointAt(end))) {
          end += Character.charCount(text.codePointAt(end));
        }
      }
      if (emitted < start) {
        sink.text(text.substring(emitted, start));
      }
      sink.token(found.id());
      emitted = end;
    }
    if (emitted < text.length()) {
      sink.text(text.substring(emitted));
    }
  }

  private static boolean endsWithWord(String text, int index) {
    return index > 0 && matches(WORD, text.codePointBefore(index));
  }

  private static boolean startsWithWord(String text, int index) {
    return index < text.length() && matches(WORD, text.codePointAt(index));
  }

  private static boolean isWhitespace(int codePoint) {
    return matches(WHITESPACE, codePoint);
  }

  private static boolean matches(Pattern pattern, int codePoint) {
    return pattern.matcher(Character.toString(codePoint)).matches();
  }
}
