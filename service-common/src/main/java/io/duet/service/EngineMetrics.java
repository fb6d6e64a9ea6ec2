package io.duet.service;

import io.duet.engine.Engine;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;

/**
 * Gauges of an engine's KV cache, the same on prefill and decode instances, and the time an
 * expert-parallel engine spends in its group's all-to-all.
 */
public final class EngineMetrics {

  private EngineMetrics() {
  }

  public static void bind(Engine engine, MeterRegistry registry) {
    Gauge.builder("duet_kv_blocks_used", engine, e -> e.kvStats().usedBlocks())
        .description("KV blocks referenced by live sequences or leases").register(registry);
    Gauge.builder("duet_kv_blocks_cached", engine, e -> e.kvStats().cachedBlocks())
        .description("unreferenced KV blocks kept for prefix reuse").register(registry);
    Gauge.builder("duet_kv_blocks_total", engine, e -> e.kvStats().totalBlocks())
        .description("KV blocks in the pool").register(registry);
    if (engine.expertParallelRanks() > 1) {
      FunctionCounter.builder("duet_expert_exchange_seconds_total", engine,
          e -> e.expertExchangeNanos() / 1e9)
          .description("time this rank's steps spent in its expert-parallel group's all-to-all: "
              + "sending rows, serving the group's, waiting for results and the others")
          .register(registry);
    }
  }
}
