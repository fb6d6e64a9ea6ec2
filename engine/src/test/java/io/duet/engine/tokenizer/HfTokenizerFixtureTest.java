package io.duet.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.duet.engine.StreamingDetokenizer;
import io.duet.engine.TestFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DeepSeek-V3's tokenizer against Hugging Face's {@code tokenizers} on the corpus of
 * {@code tokenizer/deepseek-v3-fixture.json}, which {@code make-fixture.mjs} generated with the
 * library's npm package: every string encodes to the library's ids, and decodes back.
 */
class HfTokenizerFixtureTest {

  static final Path DEEPSEEK_V3 = Path.of("models/deepseek-v3-tokenizer/tokenizer.json");

  private static final ObjectMapper JSON = new ObjectMapper();

  private static HfTokenizer tokenizer;
  private static JsonNode fixture;
  private static List<JsonNode> cases;

  @TempDir Path tempDir;

  @BeforeAll
  static void load() throws IOException {
    tokenizer = HfTokenizer.open(TestFiles.shared(DEEPSEEK_V3.toString()));
    try (InputStream in = HfTokenizerFixtureTest.class
        .getResourceAsStream("/tokenizer/deepseek-v3-fixture.json")) {
      fixture = JSON.readTree(in);
      cases = elements(fixture.path("cases"));
    }
  }

  @Test
  void everyStringEncodesToTheLibrarysIds() {
    assertTrue(cases.size() >= 200, "the corpus has " + cases.size() + " strings");
    assertEncodings(tokenizer, cases);
  }

  /**
   * Components DeepSeek-V3's file does not use (GPT-2's ByteLevel regex and prefix space, NFKC,
   * added tokens with lstrip, rstrip, single_word and normalized, every Split behaviour, invert,
   * Digits): the fixture's variants of the file, rebuilt here from their description.
   */
  @Test
  void variantsOfTheFileEncodeToTheLibrarysIds() throws IOException {
    JsonNode original = JSON.readTree(TestFiles.shared(DEEPSEEK_V3.toString()).toFile());
    List<JsonNode> variants = elements(fixture.path("variants"));
    assertEquals(2, variants.size());
    for (JsonNode variant : variants) {
      ObjectNode changed = original.deepCopy();
      variant.path("replace").fields().forEachRemaining(e -> changed.set(e.getKey(), e.getValue()));
      ArrayNode added = (ArrayNode) changed.path("added_tokens");
      int nextId = elements(added).stream().mapToInt(t -> t.path("id").asInt()).max().orElse(0);
      for (JsonNode token : variant.path("added")) {
        added.add(((ObjectNode) token.deepCopy()).put("id", ++nextId));
      }
      Path dir = Files.createDirectories(tempDir.resolve("variant" + variants.indexOf(variant)));
      JSON.writeValue(dir.resolve("tokenizer.json").toFile(), changed);
      assertEncodings(HfTokenizer.open(dir), elements(variant.path("cases")));
    }
  }

  private static void assertEncodings(HfTokenizer tokenizer, List<JsonNode> cases) {
    List<String> wrong = new ArrayList<>();
    for (JsonNode c : cases) {
      String text = c.path("text").asText();
      int[] expected = ids(c);
      int[] actual = tokenizer.encode(text, false);
      if (!Arrays.equals(expected, actual)) {
        wrong.add(escape(text) + "\n   tokenizers: " + Arrays.toString(expected)
            + "\n   ours:       " + Arrays.toString(actual));
      }
    }
    assertEquals("", String.join("\n", wrong), wrong.size() + " of " + cases.size() + " differ");
  }

  @Test
  void idsDecodeToTheLibrarysText() {
    for (JsonNode c : cases) {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      for (int id : ids(c)) {
        bytes.writeBytes(tokenizer.decode(0, id));
      }
      assertEquals(c.path("decoded").asText(), bytes.toString(StandardCharsets.UTF_8),
          escape(c.path("text").asText()));
    }
  }

  @Test
  void streamingDecodeNeverEmitsHalfACharacter() {
    for (JsonNode c : cases) {
      StreamingDetokenizer detokenizer = new StreamingDetokenizer(tokenizer, 0);
      StringBuilder text = new StringBuilder();
      for (int id : ids(c)) {
        String piece = detokenizer.accept(id);
        assertTrue(piece.indexOf('\uFFFD') < 0, "a replacement character in " + escape(piece));
        text.append(piece);
      }
      text.append(detokenizer.flush());
      assertEquals(c.path("decoded").asText(), text.toString());
    }
  }

  private static List<JsonNode> elements(JsonNode array) {
    return StreamSupport.stream(array.spliterator(), false).toList();
  }

  private static int[] ids(JsonNode c) {
    return StreamSupport.stream(c.path("ids").spliterator(), false).mapToInt(JsonNode::asInt)
        .toArray();
  }

  private static String escape(String text) {
    StringBuilder out = new StringBuilder("\"");
    text.codePoints().forEach(cp -> out.append(cp < 0x20 ? String.format("\\u%04x", cp)
        : new String(Character.toChars(cp))));
    return out.append('"').toString();
  }
}
