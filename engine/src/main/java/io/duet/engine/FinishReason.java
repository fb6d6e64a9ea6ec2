package io.duet.engine;

/** Why a generation ended, named as in the OpenAI API. */
public enum FinishReason {
  /** EOS, a stop token or a stop string. */
  STOP,
  /** {@code max_tokens} reached, or the model's context is full. */
  LENGTH;

  public String wireName() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
