package io.duet.cluster.impl;

import java.util.Locale;
import java.util.Set;

/**
 * Which configuration keys hold secrets. A key is secret when one of its dotted segments is
 * {@code api-key} (or {@code apikey}, {@code private-key}), contains "secret" or "password", or
 * has the word "token" in it as a whole word ({@code auth-token}, {@code hf_token},
 * {@code accessToken}). Words that merely start with "token" are not secrets:
 * {@code model.tokenizer} and {@code prefill.max-batch-tokens} are shown as they are.
 */
public final class Secrets {

  /** What a secret value is printed as. */
  public static final String MASK = "****";

  private static final Set<String> SECRET_WORDS = Set.of("token", "secret", "secrets", "password",
      "passwd", "passphrase", "credential", "credentials");
  private static final Set<String> SECRET_NAMES = Set.of("apikey", "privatekey", "accesskey");

  private Secrets() {
  }

  public static boolean isSecret(String dottedKey) {
    for (String segment : dottedKey.split("\\.")) {
      String joined = segment.replaceAll("[^A-Za-z0-9]", "").toLowerCase(Locale.ROOT);
      if (SECRET_NAMES.contains(joined) || joined.contains("secret") || joined.contains("password")) {
        return true;
      }
      // split kebab-case, snake_case and camelCase into words
      String spaced = segment.replaceAll("([a-z0-9])([A-Z])", "$1 $2").replaceAll("[^A-Za-z0-9]+", " ");
      for (String word : spaced.toLowerCase(Locale.ROOT).trim().split(" +")) {
        if (SECRET_WORDS.contains(word)) {
          return true;
        }
      }
    }
    return false;
  }
}
