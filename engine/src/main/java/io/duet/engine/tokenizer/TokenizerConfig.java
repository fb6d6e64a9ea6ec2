package io.duet.engine.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import io.duet.engine.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * What {@code tokenizer_config.json} says about a tokenizer's use: its BOS and EOS tokens and
 * its chat template (by name, see {@link ChatTemplateNames}).
 *
 * @param chatTemplateError why the chat template cannot be used, or null
 */
record TokenizerConfig(OptionalInt bos, int[] ends, String chatTemplate,
    String chatTemplateError) {

  /** The template name of a tokenizer whose configuration has no chat template. */
  static final String NO_TEMPLATE = "plain";

  /**
   * Reads {@code path}, if it exists; {@code tokenizerJson} (its post-processor) tells whether
   * the BOS is added when the file does not say, and {@code ids} maps token text to ids.
   */
  static TokenizerConfig read(Path path, JsonNode tokenizerJson, Map<String, Integer> ids)
      throws IOException {
    if (!Files.isRegularFile(path)) {
      return new TokenizerConfig(OptionalInt.empty(), new int[0], NO_TEMPLATE, null);
    }
    JsonNode config = TokenizerFiles.parse(path);
    Optional<String> bosText = tokenText(config.path("bos_token"));
    OptionalInt bos = bosText.isPresent() && addsBos(config, tokenizerJson, bosText.get())
        ? OptionalInt.of(id(path, "bos_token", bosText.get(), ids)) : OptionalInt.empty();
    Optional<String> eosText = tokenText(config.path("eos_token"));
    int[] ends = eosText.isPresent() ? new int[] {id(path, "eos_token", eosText.get(), ids)}
        : new int[0];
    JsonNode template = config.path("chat_template");
    if (template.isMissingNode() || template.isNull()) {
      return new TokenizerConfig(bos, ends, NO_TEMPLATE, null);
    }
    Optional<String> name = template.isTextual() ? ChatTemplateNames.nameOf(template.asText())
        : Optional.empty();
    return name.map(n -> new TokenizerConfig(bos, ends, n, null))
        .orElseGet(() -> new TokenizerConfig(bos, ends, null, path + ": its chat_template is "
            + "not one Duet implements (Duet renders named templates, it does not run Jinja); "
            + "known: " + ChatTemplateNames.known()));
  }

  /** A token as the file writes it: a string, an {@code AddedToken} object, or null. */
  private static Optional<String> tokenText(JsonNode node) {
    if (node.isTextual()) {
      return Optional.of(node.asText());
    }
    return node.path("content").isTextual() ? Optional.of(node.path("content").asText())
        : Optional.empty();
  }

  /**
   * {@code add_bos_token} when present (Llama and DeepSeek tokenizers); otherwise whether the
   * post-processor's single-sequence template starts with the BOS (Llama 3's).
   */
  private static boolean addsBos(JsonNode config, JsonNode tokenizerJson, String bos) {
    if (config.has("add_bos_token")) {
      return config.path("add_bos_token").asBoolean();
    }
    JsonNode processor = tokenizerJson.path("post_processor");
    List<JsonNode> steps = new ArrayList<>();
    if (processor.path("type").asText().equals("Sequence")) {
      processor.path("processors").forEach(steps::add);
    } else {
      steps.add(processor);
    }
    for (JsonNode step : steps) {
      if (step.path("type").asText().equals("TemplateProcessing")) {
        return bos.equals(step.path("single").path(0).path("SpecialToken").path("id").asText());
      }
    }
    return false;
  }

  private static int id(Path path, String key, String text, Map<String, Integer> ids)
      throws ModelFormatException {
    Integer id = ids.get(text);
    if (id == null) {
      throw new ModelFormatException(path + ": " + key + " '" + text
          + "' is not a token of the vocabulary");
    }
    return id;
  }
}
