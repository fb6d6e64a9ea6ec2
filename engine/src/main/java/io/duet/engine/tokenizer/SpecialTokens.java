package io.duet.engine.tokenizer;

import java.util.Arrays;
import java.util.List;

/**
 * A Hugging Face checkpoint's special tokens and chat template: what its {@code config.json}
 * says, unless its tokenizer's files say otherwise.
 *
 * @param ends the tokens that end a text
 * @param chatTemplate the name of a chat template Duet implements
 */
public record SpecialTokens(int bos, List<Integer> ends, String chatTemplate) {

  public SpecialTokens {
    ends = List.copyOf(ends);
  }

  /**
   * These, overridden by {@code tokenizer} (null: none) where its files name a BOS, end tokens
   * or a chat template.
   */
  public SpecialTokens withTokenizer(HfTokenizer tokenizer) {
    if (tokenizer == null) {
      return this;
    }
    int[] tokenizerEnds = tokenizer.endTokens();
    return new SpecialTokens(tokenizer.bosToken().orElse(bos),
        tokenizerEnds.length > 0 ? Arrays.stream(tokenizerEnds).boxed().toList() : ends,
        tokenizer.chatTemplate());
  }
}
