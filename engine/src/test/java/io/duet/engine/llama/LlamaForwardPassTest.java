package io.duet.engine.llama;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The forward pass's choices that its outputs do not show (its outputs are tested elsewhere). */
class LlamaForwardPassTest {

  @Test
  void attentionPullsKvUnlessTheWeightsAndTheStepsKvStayInTheCaches() {
    long budget = LlamaForwardPass.RESIDENT_STEP_KV_BYTES;
    assertFalse(LlamaForwardPass.pullsKv(true, budget), "resident weights, KV within budget");
    assertTrue(LlamaForwardPass.pullsKv(true, budget + 1), "resident weights, KV beyond budget");
    assertTrue(LlamaForwardPass.pullsKv(false, 0), "weights that stream evict the KV");
    // aidreams260K at 16 rows of 32 positions: 4 layers x 64 floats x keys and values.
    assertFalse(LlamaForwardPass.pullsKv(true, 16 * 32 * 4 * 64 * 2L * Float.BYTES));
  }
}
