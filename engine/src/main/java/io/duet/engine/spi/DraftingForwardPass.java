package io.duet.engine.spi;

/**
 * A forward pass whose model has a next-token module that drafts (DeepSeek-V3's multi-token
 * prediction): from the main model's hidden state at a position and the token that follows it,
 * the module predicts the token after that one. The engine keeps each row's hidden state from
 * {@link #forward} until the following token is known, then runs {@link #draft}.
 */
public interface DraftingForwardPass extends ForwardPass {

  /** Values of one row's hidden state. */
  int hiddenSize();

  /**
   * The hidden state of every token row of the last {@link #forward}, row {@code r} at
   * {@code r * hiddenSize()}: what {@link #draft} takes. Valid until the next forward or draft.
   */
  float[] hiddenStates();

  /**
   * Runs the next-token module over {@code batch}, whose row for position {@code p} carries the
   * token at {@code p + 1}, with the main model's hidden state of position {@code p} in
   * {@code hidden} (row {@code r} at {@code r * hiddenSize()}): stores the module's KV in its
   * own cache layer (the last one) and writes the logits of the token at {@code p + 2} for the
   * rows that want them, as {@link #forward} does.
   */
  void draft(ForwardBatch batch, float[] hidden, float[] logits);
}
