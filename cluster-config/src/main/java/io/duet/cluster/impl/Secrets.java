package io.duet.cluster.impl;

import io.duet.cluster.Setting;
import io.duet.cluster.Settings;
import java.util.Locale;
import java.util.Set;

/**
 * Which configuration keys hold secrets. A declared setting is secret when its declaration says
 * so. Any other key (an entry of a free-form map such as {@code cluster.hazelcast-properties},
 * or an unknown key in an error message) is secret when one of its dotted segments is
 * {@code api-key} (or {@code apikey}, {@code private-key}), contains "secret" or "password", or
 * has the word "token" in it as a whole word ({@code auth-token}, {@code hf_token},
 * {@code accessToken}). Words that merely start with "token" are not secrets:
 * {@code x.tokenizer} and {@code x.max-batch-tokens} are shown as they are.
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
    return Settings.find(dottedKey).map(Setting::secret).orElseGet(() -> namesSecret(dottedKey));
  }

  private static boolean namesSecret(String dottedKey) {
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
