package io.duet.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * Recognises a {@code tokenizer_config.json} chat template (Jinja text) as one of the templates
 * Duet renders by name (the proxy's {@code ChatTemplate}s). A template is known by the SHA-256 of
 * its exact text, so an edited template is never mistaken for a known one.
 */
final class ChatTemplateNames {

  /** SHA-256 of the template text to the name Duet renders it under. */
  private static final Map<String, String> BY_DIGEST = Map.of(
      // DeepSeek-V3's (and DeepSeek-V3-Base's) tokenizer_config.json
      "3b8267e54b67df6500f231ffa969955cc9d26b3444a291ced4eb96ca7d3ca1ea", "deepseek-v3");

  private ChatTemplateNames() {
  }

  static Optional<String> nameOf(String jinja) {
    return Optional.ofNullable(BY_DIGEST.get(sha256(jinja)));
  }

  /** The recognised templates: each name with the digest of its text. */
  static String known() {
    StringBuilder out = new StringBuilder();
    new TreeMap<>(BY_DIGEST).forEach((digest, name) ->
        out.append(out.length() == 0 ? "" : ", ").append(name).append(" (sha256 ")
            .append(digest, 0, 12).append("...)"));
    return out.toString();
  }

  private static String sha256(String text) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
          .digest(text.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java platform has SHA-256", e);
    }
  }
}
