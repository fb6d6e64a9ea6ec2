package io.duet.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.duet.engine.ModelFormatException;
import io.duet.engine.TestFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalInt;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What {@code tokenizer_config.json} gives, and what is refused, with clear errors. */
class HfTokenizerTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String BOS = "<｜begin▁of▁sentence｜>";

  private static HfTokenizer deepSeek;

  @TempDir Path tempDir;

  @BeforeAll
  static void load() throws IOException {
    deepSeek = HfTokenizer.open(
        TestFiles.shared(HfTokenizerFixtureTest.DEEPSEEK_V3.toString()).getParent());
  }

  @Test
  void deepSeekConfiguration() {
    assertEquals(OptionalInt.of(0), deepSeek.bosToken());
    assertArrayEquals(new int[] {1}, deepSeek.endTokens());
    assertEquals("deepseek-v3", deepSeek.chatTemplate());
    assertEquals(128815, deepSeek.vocabSize(), "128000 BPE tokens, added tokens up to 128814");
  }

  @Test
  void bosIsAddedWhenAskedButNeverDoubled() {
    int[] plain = deepSeek.encode("Hello", false);
    int[] withBos = deepSeek.encode("Hello", true);
    assertEquals(plain.length + 1, withBos.length);
    assertEquals(0, withBos[0]);
    assertArrayEquals(withBos, deepSeek.encode(BOS + "Hello", true));
    assertArrayEquals(withBos, deepSeek.encode(BOS + "Hello", false));
    assertArrayEquals(new int[] {0}, deepSeek.encode("", true));
  }

  /**
   * A pre-tokenizer piece can be as long as the prompt (a run of spaces, of letters, of CJK):
   * neither the regexes nor the merge may recurse per character or rescan the piece.
   */
  @Test
  void longSinglePiecesRoundTrip() {
    for (String unit : new String[] {" ", "a", "深", "\n", "7", "😀"}) {
      String text = unit.repeat(100_000);
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      for (int id : deepSeek.encode(text, false)) {
        bytes.writeBytes(deepSeek.decode(0, id));
      }
      assertEquals(text, bytes.toString(StandardCharsets.UTF_8), "a run of '" + unit + "'");
    }
  }

  @Test
  void decodeOfGapsAndOutOfRangeIds() throws IOException {
    ObjectNode json = minimal();
    json.putArray("added_tokens").add(marker(300, "<x>"));
    HfTokenizer gapped = HfTokenizer.open(write(json));
    assertEquals(301, gapped.vocabSize());
    assertEquals(0, gapped.decode(0, 280).length, "an id between the BPE and added tokens");
    assertEquals("<x>", new String(gapped.decode(0, 300), StandardCharsets.UTF_8));
    assertArrayEquals(new int[] {'a' - '!', 300}, gapped.encode("a<x>", false));
    assertEquals(0, gapped.decode(0, 301).length, "an id past the vocabulary, which a model "
        + "with a padded output layer can sample");
    assertThrows(IllegalArgumentException.class, () -> deepSeek.decode(0, -1));
  }

  @Test
  void withoutConfigurationThereIsNoBosNorEndNorTemplate() throws IOException {
    HfTokenizer bare = HfTokenizer.open(write(withMarkers()));
    assertEquals(OptionalInt.empty(), bare.bosToken());
    assertArrayEquals(new int[0], bare.endTokens());
    assertEquals("plain", bare.chatTemplate());
    assertArrayEquals(bare.encode("Hello", false), bare.encode("Hello", true));
  }

  @Test
  void configurationVariants() throws IOException {
    HfTokenizer objects = withConfig(c -> c.put("eos_token", "</s>").putObject("bos_token")
        .put("content", "<s>"));
    assertEquals(OptionalInt.empty(), objects.bosToken(), "add_bos_token left out and no "
        + "post-processor template adds it");
    assertArrayEquals(new int[] {257}, objects.endTokens());

    HfTokenizer added = withConfig(c -> c.put("bos_token", "<s>").put("add_bos_token", true));
    assertEquals(OptionalInt.of(256), added.bosToken());
    assertEquals(256, added.encode("hi", true)[0]);

    HfTokenizer unknown = withConfig(c -> c.put("chat_template", "{{ messages }}"));
    IllegalStateException e = assertThrows(IllegalStateException.class, unknown::chatTemplate);
    assertTrue(e.getMessage().contains("tokenizer_config.json") && e.getMessage().contains(
        "known: deepseek-v3"), e.getMessage());

    ModelFormatException missing = assertThrows(ModelFormatException.class,
        () -> withConfig(c -> c.put("eos_token", "<nope>")));
    assertTrue(missing.getMessage().contains("eos_token '<nope>' is not a token"),
        missing.getMessage());
  }

  /** A Llama 3 style file: no add_bos_token, the post-processor's template starts with BOS. */
  @Test
  void bosFromThePostProcessorTemplate() throws IOException {
    ObjectNode json = withMarkers();
    ObjectNode template = json.putObject("post_processor").put("type", "TemplateProcessing");
    template.putArray("single").addObject().putObject("SpecialToken").put("id", "<s>");
    Path file = write(json);
    JSON.writeValue(file.resolveSibling("tokenizer_config.json").toFile(),
        JSON.createObjectNode().put("bos_token", "<s>"));
    assertEquals(OptionalInt.of(256), HfTokenizer.open(file).bosToken());
  }

  @Test
  void aMinimalByteLevelFileWorks() throws IOException {
    HfTokenizer minimal = HfTokenizer.open(write(minimal()));
    assertArrayEquals(new int[] {'h' - '!', 'i' - '!'}, minimal.encode("hi", true));
    assertEquals("hi", new String(minimal.decode(0, 'h' - '!')) + new String(
        minimal.decode(0, 'i' - '!')));
  }

  @Test
  void unsupportedComponentsAreRefusedNamingFileAndComponent() throws IOException {
    assertRefused(json -> json.with("model").put("type", "Unigram"), "model type");
    assertRefused(json -> json.set("normalizer", JSON.createObjectNode().put("type", "Lowercase")),
        "normalizer of type 'Lowercase'");
    assertRefused(json -> json.set("pre_tokenizer", JSON.createObjectNode()
        .put("type", "Metaspace")), "pre_tokenizer of type 'Metaspace'");
    assertRefused(json -> json.set("pre_tokenizer", JSON.createObjectNode()
        .put("type", "Digits")), "no ByteLevel step");
    assertRefused(json -> json.set("decoder", JSON.createObjectNode().put("type", "WordPiece")),
        "decoder of type 'WordPiece'");
    assertRefused(json -> json.with("model").put("byte_fallback", true), "byte_fallback");
    assertRefused(json -> json.with("model").with("vocab").remove("Ā"), "byte 0x0");
    assertRefused(json -> json.with("model").withArray("merges").add("h i"),
        "merge 0 (\"h i\") names a token missing");
    assertRefused(json -> json.with("pre_tokenizer").put("type", "Split").put("behavior",
        "Isolated").set("pattern", JSON.createObjectNode().put("Regex", "(unclosed")),
        "regex (unclosed is not supported");
  }

  @Test
  void notJsonIsRefused() throws IOException {
    Path file = tempDir.resolve("tokenizer.json");
    Files.writeString(file, "{\"model\": ");
    ModelFormatException e = assertThrows(ModelFormatException.class, () -> HfTokenizer.open(file));
    assertTrue(e.getMessage().contains(file + ": not valid JSON"), e.getMessage());
    assertThrows(ModelFormatException.class, () -> HfTokenizer.open(tempDir.resolve("none")));
  }

  private void assertRefused(Consumer<ObjectNode> change, String problem) throws IOException {
    ObjectNode json = minimal();
    change.accept(json);
    Path file = write(json);
    ModelFormatException e = assertThrows(ModelFormatException.class, () -> HfTokenizer.open(file));
    assertTrue(e.getMessage().contains(problem) && e.getMessage().contains(file.toString()),
        e.getMessage());
  }

  /** A byte-level file with the 256 byte tokens only, ids in the alphabet's order. */
  private static ObjectNode minimal() {
    ObjectNode json = JSON.createObjectNode();
    ObjectNode model = json.putObject("model").put("type", "BPE");
    ObjectNode vocab = model.putObject("vocab");
    int id = 0;
    for (int c = '!'; c <= '~'; c++) {
      vocab.put(String.valueOf((char) c), id++);
    }
    for (int b = 0; b < 256; b++) {
      String symbol = String.valueOf(ByteLevel.charOf(b));
      if (!vocab.has(symbol)) {
        vocab.put(symbol, id++);
      }
    }
    model.putArray("merges");
    json.putObject("pre_tokenizer").put("type", "ByteLevel").put("add_prefix_space", false);
    json.putObject("decoder").put("type", "ByteLevel");
    return json;
  }

  private Path write(ObjectNode json) throws IOException {
    Path dir = Files.createTempDirectory(tempDir, "tok");
    Path file = dir.resolve("tokenizer.json");
    JSON.writeValue(file.toFile(), json);
    return file;
  }

  /** {@link #minimal} with the added tokens {@code <s>} (256) and {@code </s>} (257). */
  private static ObjectNode withMarkers() {
    ObjectNode json = minimal();
    json.putArray("added_tokens").add(marker(256, "<s>")).add(marker(257, "</s>"));
    return json;
  }

  private static ObjectNode marker(int id, String content) {
    return JSON.createObjectNode().put("id", id).put("content", content).put("special", true)
        .put("normalized", false);
  }

  /** {@link #withMarkers} with a tokenizer_config.json of {@code change}'s making. */
  private HfTokenizer withConfig(Consumer<ObjectNode> change) throws IOException {
    ObjectNode config = JSON.createObjectNode();
    change.accept(config);
    Path file = write(withMarkers());
    JSON.writeValue(file.resolveSibling("tokenizer_config.json").toFile(), config);
    return HfTokenizer.open(file.getParent());
  }
}
