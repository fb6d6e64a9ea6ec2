package io.duet.engine.sim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Sequence;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The timing model against DeepSeek's published figures, and the engine keeping to it. */
class SimTimingTest {

  private static final SimTiming DEFAULTS = new SimTiming(SimProfile.defaultProfile());

  @Test
  void prefillOfAnH800NodeComesToDeepSeeksInputThroughput() {
    // 8 GPUs, 4k-token prompts of which 56.3% hit the prefix cache: 73.7k input tokens/s.
    SimTiming node = new SimTiming(SimProfile.of(Map.of("accelerators", "8",
        "prefill-attention-ns", "0", "prefill-overhead-ms", "0")));
    int computed = (int) Math.round(4096 * (1 - 0.563));
    double seconds = node.prefillNanos(computed, 0) / 1e9;
    double inputPerSecond = 4096 / seconds;
    assertEquals(73_700, inputPerSecond, 73_700 * 0.02, "input tokens/s per node");
  }

  @Test
  void decodeOfAnH800ComesToDeepSeeksOutputThroughputAtTwentyOneTokensPerUser() {
    // 88 sequences of a 4k context per GPU, MTP 1 at 85%.
    double stepSeconds = DEFAULTS.decodeNanos(88, 88L * 4096) / 1e9;
    double perUser = 1 / stepSeconds;
    assertEquals(21, perUser, 1, "tokens/s per user (DeepSeek: 20-22)");
    assertEquals(14_800 / 8.0, 88 * perUser, 14_800 / 8.0 * 0.05, "tokens/s per GPU");
    assertEquals(1.85, DEFAULTS.tokensPerStep(), 1e-9);
  }

  @Test
  void prefixHitsAreNotComputedButStillAttendedTo() {
    long cold = DEFAULTS.prefillNanos(2048, 2048L * 2047 / 2);
    long warm = DEFAULTS.prefillNanos(1024, 1024L * (1024 + 2047) / 2);
    assertTrue(warm < cold * 0.6, warm + " vs " + cold);
    assertTrue(warm > DEFAULTS.prefillNanos(1024, 1024L * 1023 / 2));
  }

  @Test
  void theAllToAllAndTheTimeScaleAddUp() {
    SimTiming lockstep = new SimTiming(SimProfile.of(Map.of("decode-all-to-all-ms", "5",
        "speculative-tokens", "0", "time-scale", "2")));
    SimTiming plain = new SimTiming(SimProfile.of(Map.of("speculative-tokens", "0")));
    assertEquals(plain.decodeNanos(10, 1000) * 2 + 10_000_000, lockstep.decodeNanos(10, 1000),
        2);
  }

  @Test
  void theEngineSpendsTheModelledTime() throws IOException {
    try (Engine engine = Engine.open(new EngineOptions().architecture("sim").threads(1)
        .parameters(Map.of("decode-step-ms", "30", "speculative-tokens", "0")))) {
      Sequence s = engine.allocate(new int[] {256, 104, 105});
      engine.step(List.of(s));
      engine.append(s, 'x');
      long start = System.nanoTime();
      engine.step(List.of(s));
      long elapsed = System.nanoTime() - start;
      long modelled = new SimTiming(SimProfile.of(Map.of("decode-step-ms", "30",
          "speculative-tokens", "0"))).decodeNanos(1, 4);
      assertTrue(elapsed >= modelled, elapsed + " ns < " + modelled);
      assertTrue(modelled >= 30_000_000);
    }
  }
}
