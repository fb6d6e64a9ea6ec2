package io.duet.prefill.impl;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.Failure;
import io.duet.contract.ServiceException;
import io.duet.engine.ModelInfo;
import io.duet.engine.Tokenizer;
import io.duet.engine.llama.Llama2cTokenizer;
import io.duet.service.ServiceTests;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The byte bound against the real aidreams260K tokenizer: on random texts of every kind (ASCII,
 * accents, CJK, emoji, lone surrogates, control characters), it never refuses a prompt whose
 * tokens fit, and it refuses what is too long before any tokenizing.
 */
class PromptLimitsTest {

  private static final int CONTEXT = 128;
  private static final String[] PIECES = {"the ", "a", " ", "Once upon a time", "é", "ß", "中文",
      "😀", "\uD800", "\uDC00x", "\n", "\t", "\u0000", "ab", "robot ", "zzzz", "<s>", "</s>",
      "\u2028", "ﬁ"};
  /**
   * Up to this many pieces per text: enough for texts well past the bound (aidreams260K's
   * longest token stands for {@value #MAX_BYTES_PER_TOKEN} bytes), few enough to tokenize fast.
   */
  private static final int PIECES_PER_TEXT = 1_200;
  private static final int MAX_BYTES_PER_TOKEN = 10;
  private static Tokenizer tokenizer;
  private static PromptLimits limits;

  @BeforeAll
  static void load() throws Exception {
    tokenizer = Llama2cTokenizer.load(ServiceTests.shared("aidreams260K.tok512.bin"), 512);
    limits = new PromptLimits(new ModelInfo("llama2c", 512, CONTEXT, 1, List.of(2), "llama2",
        "test", 0), tokenizer);
  }

  private static String randomText(Random random, int pieces) {
    StringBuilder text = new StringBuilder();
    for (int i = 0; i < pieces; i++) {
      text.append(PIECES[random.nextInt(PIECES.length)]);
    }
    return text.toString();
  }

  @Test
  void theLongestTokenIsFoundInTheVocabulary() {
    assertEquals(MAX_BYTES_PER_TOKEN, PromptLimits.maxBytesPerToken(tokenizer, 1));
  }

  @Test
  void theByteCountIsALowerBoundOfWhatTheTokenizerEncodes() {
    Random random = new Random(1);
    for (int round = 0; round < 2_000; round++) {
      String text = randomText(random, random.nextInt(40));
      assertTrue(PromptLimits.utf8LowerBound(text)
          <= text.getBytes(StandardCharsets.UTF_8).length, text);
    }
  }

  @Test
  void noTextWhoseTokensFitIsRefusedByItsBytes() {
    Random random = new Random(2);
    int fitting = 0;
    int refusedByBytes = 0;
    for (int round = 0; round < 400; round++) {
      // Half of them short enough to fit, half of any length up to well past the bound.
      String text = randomText(random, random.nextInt(round % 2 == 0 ? 60 : PIECES_PER_TEXT));
      int maxTokens = random.nextBoolean() ? 0 : 1 + random.nextInt(40);
      int tokens = tokenizer.encode(text, true).length;
      boolean fits = tokens + Math.max(1, maxTokens) <= CONTEXT;
      if (fits) {
        fitting++;
        assertDoesNotThrow(() -> limits.checkText(text, maxTokens), text);
        assertDoesNotThrow(() -> limits.checkTokens(tokens, maxTokens), text);
      } else {
        assertEquals(Failure.CONTEXT_LENGTH, assertThrows(ServiceException.class,
            () -> limits.checkTokens(tokens, maxTokens)).failure());
        try {
          limits.checkText(text, maxTokens);
        } catch (ServiceException e) {
          refusedByBytes++;
        }
      }
    }
    assertTrue(fitting > 60 && refusedByBytes > 60, fitting + " fit, " + refusedByBytes
        + " refused by their bytes: the texts must cover both sides of the bound");
  }

  @Test
  void aMebibytePromptIsRefusedByItsBytesAtOnce() {
    String text = "Once upon a time ".repeat(62_000);
    long start = System.nanoTime();
    ServiceException e = assertThrows(ServiceException.class, () -> limits.checkText(text, 0));
    long millis = (System.nanoTime() - start) / 1_000_000;
    assertEquals(Failure.CONTEXT_LENGTH, e.failure());
    assertTrue(e.getMessage().startsWith("This model's maximum context length is 128 tokens."),
        e.getMessage());
    assertTrue(millis < 1_000, millis + " ms");
  }

  @Test
  void aMaxTokensThatDoesNotFitBesideThePromptIsRefusedNamingBoth() {
    ServiceException e = assertThrows(ServiceException.class, () -> limits.checkTokens(100, 29));
    assertEquals("This model's maximum context length is 128 tokens. However, you requested 129 "
        + "tokens (100 in the prompt, 29 in the completion). Please reduce the length of the "
        + "prompt or completion.", e.getMessage());
    assertDoesNotThrow(() -> limits.checkTokens(100, 28));
    assertDoesNotThrow(() -> limits.checkTokens(127, 0), "no max_tokens asked: one token left");
    assertThrows(ServiceException.class, () -> limits.checkTokens(128, 0));
  }
}
