package io.duet.service;

import static org.junit.jupiter.api.Assertions.assertEquals;

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
}
