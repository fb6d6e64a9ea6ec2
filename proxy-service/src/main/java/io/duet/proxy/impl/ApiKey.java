package io.duet.proxy.impl;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

/** The API key a proxy may require of its clients, over HTTP and over the event bus alike. */
final class ApiKey {

  private final byte[] key;

  /** @param key the required key; null when clients need none */
  ApiKey(String key) {
    this.key = key == null ? null : key.getBytes(StandardCharsets.UTF_8);
  }

  boolean required() {
    return key != null;
  }

  /** Whether {@code presented} is the key; compared in constant time. */
  boolean matches(String presented) {
    return presented != null
        && MessageDigest.isEqual(key, presented.getBytes(StandardCharsets.UTF_8));
  }
}
