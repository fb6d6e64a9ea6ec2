package io.duet.contract;

/** What an instance does in the cluster. */
public enum Role {
  PROXY, PREFILL, DECODE;

  public String wireName() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }

  public static Role fromWire(String name) {
    return valueOf(name.toUpperCase(java.util.Locale.ROOT));
  }
}
