package io.duet.engine.tokenizer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.duet.engine.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Reads {@code tokenizer.json} and {@code tokenizer_config.json} into an {@link HfTokenizer}'s
 * parts, refusing what it does not implement with the file and the component named.
 */
final class TokenizerFiles {

  static final String TOKENIZER_JSON = "tokenizer.json";
  static final String TOKENIZER_CONFIG = "tokenizer_config.json";

  /** GPT-2's pre-tokenizer regex, which {@code ByteLevel} applies when {@code use_regex}. */
  private static final String GPT2_PATTERN =
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

  /** A vocabulary's 128K keys are read once: interning them would cost seconds. */
  private static final ObjectMapper JSON = new ObjectMapper(JsonFactory.builder()
      .disable(JsonFactory.Feature.INTERN_FIELD_NAMES)
      .disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES).build());

  private final Path file;

  private TokenizerFiles(Path file) {
    this.file = file;
  }

  static HfTokenizer.Parts read(Path tokenizerJsonOrDirectory) throws IOException {
    Path file = Files.isDirectory(tokenizerJsonOrDirectory)
        ? tokenizerJsonOrDirectory.resolve(TOKENIZER_JSON) : tokenizerJsonOrDirectory;
    if (!Files.isRegularFile(file)) {
      throw new ModelFormatException("tokenizer " + tokenizerJsonOrDirectory + ": no "
          + (file == tokenizerJsonOrDirectory ? "such file" : TOKENIZER_JSON + " in it"));
    }
    return new TokenizerFiles(file).parts();
  }

  private HfTokenizer.Parts parts() throws IOException {
    JsonNode root = parse(file);
    JsonNode modelNode = root.path("model");
    require(modelNode.path("type").asText("BPE").equals("BPE"), "model",
        "model type " + modelNode.path("type") + " (only BPE is supported)");
    Map<String, Integer> vocab = vocab(modelNode);
    UnaryOperator<String> normalizer = normalizer(root.path("normalizer"));
    List<PreTokenizer> preTokenizers = new ArrayList<>();
    boolean byteLevel = preTokenizer(root.path("pre_tokenizer"), preTokenizers);
    require(byteLevel, "pre_tokenizer", "no ByteLevel step (only byte-level BPE is supported)");
    decoder(root.path("decoder"));
    BytePairModel model = new BytePairModel(vocab, merges(modelNode, vocab),
        modelNode.path("ignore_merges").asBoolean(false));

    List<AddedTokens.Token> raw = new ArrayList<>();
    List<AddedTokens.Token> normalized = new ArrayList<>();
    Map<Integer, String> addedText = new HashMap<>();
    Map<String, Integer> ids = new HashMap<>(vocab);
    int vocabSize = vocab.values().stream().mapToInt(i -> i + 1).max().orElse(0);
    for (JsonNode added : root.path("added_tokens")) {
      String content = added.path("content").asText("");
      int id = added.path("id").asInt(-1);
      require(!content.isEmpty() && id >= 0, "added_tokens", "an added token without content "
          + "or id: " + added);
      boolean isNormalized = added.path("normalized").asBoolean(!added.path("special")
          .asBoolean(false));
      AddedTokens.Token token = new AddedTokens.Token(
          isNormalized ? normalizer.apply(content) : content, id,
          added.path("single_word").asBoolean(false), added.path("lstrip").asBoolean(false),
          added.path("rstrip").asBoolean(false));
      (isNormalized ? normalized : raw).add(token);
      addedText.put(id, content);
      ids.put(content, id);
      vocabSize = Math.max(vocabSize, id + 1);
    }
    byte[][] decoded = new byte[vocabSize][];
    Arrays.fill(decoded, new byte[0]);
    vocab.forEach((token, id) -> decoded[id] = ByteLevel.decode(token));
    // An added token's text wins over the model's token of the same id, as in tokenizers.
    addedText.forEach((id, text) -> decoded[id] = ByteLevel.decode(text));
    TokenizerConfig config = TokenizerConfig.read(file.resolveSibling(TOKENIZER_CONFIG), root,
        ids);
    return new HfTokenizer.Parts(new AddedTokens(raw), new AddedTokens(normalized), normalizer,
        List.copyOf(preTokenizers), model, decoded, config.bos(), config.ends(),
        config.chatTemplate(), config.chatTemplateError());
  }

  static JsonNode parse(Path path) throws IOException {
    try {
      return JSON.readTree(path.toFile());
    } catch (JsonProcessingException e) {
      throw new ModelFormatException(path + ": not valid JSON: " + e.getOriginalMessage());
    }
  }

  private Map<String, Integer> vocab(JsonNode model) throws ModelFormatException {
    require(model.path("vocab").isObject(), "model.vocab", "missing");
    require(model.path("dropout").asDouble(0) == 0, "model.dropout",
        model.path("dropout") + " (BPE dropout is for training, not supported)");
    require(!model.path("byte_fallback").asBoolean(false), "model.byte_fallback",
        "true (only byte-level BPE is supported)");
    require(model.path("continuing_subword_prefix").asText("").isEmpty()
        && model.path("end_of_word_suffix").asText("").isEmpty(), "model",
        "continuing_subword_prefix/end_of_word_suffix are not supported");
    Map<String, Integer> vocab = new HashMap<>();
    model.path("vocab").fields().forEachRemaining(e -> vocab.put(e.getKey(), e.getValue().asInt()));
    for (int b = 0; b < 256; b++) {
      if (!vocab.containsKey(String.valueOf(ByteLevel.charOf(b)))) {
        throw problem("model.vocab", "has no token for byte 0x" + Integer.toHexString(b)
            + " (byte-level BPE needs all 256)");
      }
    }
    return vocab;
  }

  private PairTable merges(JsonNode model, Map<String, Integer> vocab)
      throws ModelFormatException {
    JsonNode merges = model.path("merges");
    PairTable table = new PairTable(merges.size());
    int rank = 0;
    for (JsonNode merge : merges) {
      String left;
      String right;
      if (merge.isArray() && merge.size() == 2) {
        left = merge.get(0).asText();
        right = merge.get(1).asText();
      } else {
        String text = merge.asText();
        int space = text.indexOf(' ');
        if (space < 0 || text.indexOf(' ', space + 1) >= 0) {
          throw problem("model.merges", "merge " + rank + " is " + merge + ", not two tokens");
        }
        left = text.substring(0, space);
        right = text.substring(space + 1);
      }
      Integer leftId = vocab.get(left);
      Integer rightId = vocab.get(right);
      Integer mergedId = vocab.get(left + right);
      if (leftId == null || rightId == null || mergedId == null) {
        throw problem("model.merges",
            "merge " + rank + " (" + merge + ") names a token missing from the vocabulary");
      }
      table.put(leftId, rightId, PairMerger.merge(rank, mergedId));
      rank++;
    }
    return table;
  }

  private UnaryOperator<String> normalizer(JsonNode node) throws ModelFormatException {
    if (node.isMissingNode() || node.isNull()) {
      return UnaryOperator.identity();
    }
    String type = node.path("type").asText();
    if (type.equals("Sequence")) {
      UnaryOperator<String> all = UnaryOperator.identity();
      for (JsonNode step : node.path("normalizers")) {
        UnaryOperator<String> before = all;
        UnaryOperator<String> next = normalizer(step);
        all = s -> next.apply(before.apply(s));
      }
      return all;
    }
    Normalizer.Form form = switch (type) {
      case "NFC" -> Normalizer.Form.NFC;
      case "NFD" -> Normalizer.Form.NFD;
      case "NFKC" -> Normalizer.Form.NFKC;
      case "NFKD" -> Normalizer.Form.NFKD;
      default -> throw unsupported("normalizer", type);
    };
    return s -> Normalizer.normalize(s, form);
  }

  /** Adds the steps of {@code node} to {@code steps}; whether the last one is ByteLevel. */
  private boolean preTokenizer(JsonNode node, List<PreTokenizer> steps)
      throws ModelFormatException {
    String type = node.path("type").asText();
    switch (type) {
      case "Sequence" -> {
        boolean byteLevel = false;
        for (JsonNode step : node.path("pretokenizers")) {
          require(!byteLevel, "pre_tokenizer", "a step after ByteLevel is not supported");
          byteLevel = preTokenizer(step, steps);
        }
        return byteLevel;
      }
      case "Split" -> {
        JsonNode pattern = node.path("pattern");
        String regex = pattern.has("Regex") ? pattern.path("Regex").asText()
            : Pattern.quote(pattern.path("String").asText());
        steps.add(new RegexSplit(compile(regex), behavior(node.path("behavior").asText()),
            node.path("invert").asBoolean(false)));
        return false;
      }
      case "Digits" -> {
        String digits = node.path("individual_digits").asBoolean(false) ? "\\p{N}" : "\\p{N}+";
        steps.add(new RegexSplit(compile(digits), RegexSplit.Behavior.ISOLATED, false));
        return false;
      }
      case "ByteLevel" -> {
        if (node.path("add_prefix_space").asBoolean(true)) {
          steps.add((piece, out) -> out.accept(piece.startsWith(" ") ? piece : " " + piece));
        }
        if (node.path("use_regex").asBoolean(true)) {
          steps.add(new RegexSplit(compile(GPT2_PATTERN), RegexSplit.Behavior.ISOLATED, false));
        }
        return true;
      }
      default -> throw unsupported("pre_tokenizer", type);
    }
  }

  private void decoder(JsonNode node) throws ModelFormatException {
    String type = node.path("type").asText();
    if (type.equals("Sequence") && node.path("decoders").size() == 1) {
      decoder(node.path("decoders").get(0));
    } else if (!type.equals("ByteLevel")) {
      throw unsupported("decoder", type);
    }
  }

  private RegexSplit.Behavior behavior(String name) throws ModelFormatException {
    String constant = name.replaceAll("([a-z])([A-Z])", "$1_$2").toUpperCase(Locale.ROOT);
    for (RegexSplit.Behavior behavior : RegexSplit.Behavior.values()) {
      if (behavior.name().equals(constant)) {
        return behavior;
      }
    }
    throw unsupported("pre_tokenizer Split behavior", name);
  }

  /**
   * A {@code tokenizers} regex (Oniguruma) as a Java one: the constructs tokenizer files use mean
   * the same in both once {@code \s}, {@code \w} and {@code \d} are Unicode-aware.
   */
  private Pattern compile(String regex) throws ModelFormatException {
    try {
      return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
    } catch (PatternSyntaxException e) {
      throw new ModelFormatException("tokenizer " + file + ": pre_tokenizer regex " + regex
          + " is not supported: " + e.getDescription());
    }
  }

  private ModelFormatException unsupported(String component, String type) {
    return new ModelFormatException("tokenizer " + file + ": " + component + " of type '" + type
        + "' is not supported (byte-level BPE with Split, Digits and ByteLevel pre-tokenizers, "
        + "NFC/NFD/NFKC/NFKD normalizers and the ByteLevel decoder are)");
  }

  private void require(boolean condition, String component, String problem)
      throws ModelFormatException {
    if (!condition) {
      throw problem(component, problem);
    }
  }

  private ModelFormatException problem(String component, String problem) {
    return new ModelFormatException("tokenizer " + file + ": " + component + ": " + problem);
  }
}
