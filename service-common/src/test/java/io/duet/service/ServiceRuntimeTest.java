package io.duet.service;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.Role;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** How a service's engines are sized. */
class ServiceRuntimeTest {

  @Test
  void theRanksOfOneJvmShareItsCoresUnlessThreadsAreConfigured() {
    assertEquals(8, ServiceRuntime.threadsPerRank(0, 1, 8), "one rank: every core");
    assertEquals(4, ServiceRuntime.threadsPerRank(0, 2, 8));
    assertEquals(1, ServiceRuntime.threadsPerRank(0, 2, 3), "evenly, rounded down");
    assertEquals(1, ServiceRuntime.threadsPerRank(0, 4, 2), "at least one each");
    assertEquals(3, ServiceRuntime.threadsPerRank(3, 2, 2), "a configured count is per rank");
  }

  /**
   * decode.num-speculative-tokens 1 turns the real engine's MTP on in prefill and decode
   * instances alike (their KV must agree); more is refused, and the simulated engine keeps it
   * as a parameter of its own.
   */
  @Test
  void speculativeTokensTurnMtpOnForEveryRoleOfARealModel() {
    Path model = Path.of("model");
    DuetConfig mtp = DuetConfig.defaults().with(Settings.DECODE_NUM_SPECULATIVE_TOKENS, 1);
    for (Role role : Role.values()) {
      assertTrue(ServiceRuntime.modelOptions(mtp, role, model, null).mtp(), role.toString());
      assertFalse(ServiceRuntime.modelOptions(DuetConfig.defaults(), role, model, null).mtp());
    }
    DuetConfig two = DuetConfig.defaults().with(Settings.DECODE_NUM_SPECULATIVE_TOKENS, 2);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ServiceRuntime.modelOptions(two, Role.DECODE, model, null));
    assertTrue(e.getMessage().contains("at most 1"), e.getMessage());
    DuetConfig sim = two.with(Settings.ENGINE, Settings.ENGINE_SIM);
    assertFalse(ServiceRuntime.modelOptions(sim, Role.DECODE, model, null).mtp());
  }
}
