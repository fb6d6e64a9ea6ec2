package io.duet.engine.spi;

/** An architecture's forward pass: token rows in, KV written, next-token logits out. */
public interface ForwardPass {

  /**
   * Runs the model over the rows of {@code batch}: stores each row's KV at its position of its
   * sequence's blocks, and writes {@code batch.logitRowCount()} rows of {@code vocabSize} logits
   * into {@code logits}, row {@code r} for token row {@code batch.logitSourceRow(r)}. Rows of one
   * sequence are in position order, and every earlier position of it is cached or an earlier row
   * of this batch.
   *
   * <p>Every logit must come out the same whatever else is in the batch (a sequence alone or
   * among others), so that batching never changes what a request generates.
   */
  void forward(ForwardBatch batch, float[] logits);

  /**
   * Called once after every step of the engine, whether it ran any forward pass or none, and
   * whether it succeeded or not: an expert-parallel pass serves the other ranks of its group
   * here until all have ended the step ({@link ExpertExchange#finishStep}).
   */
  default void endStep() {
  }
}
