package io.duet.prefill;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.kv.KvChannel;

/**
 * Settings of one prefill instance.
 *
 * @param host address the KV and status servers bind to and announce
 * @param kvPort KV transfer port, 0 for any free port
 * @param httpPort status (health, metrics) port, 0 for any free port
 * @param maxBatchTokens prompt tokens prefilled together in one scheduling round
 * @param maxWaiting requests queued beyond which new ones are refused as overloaded
 * @param leaseMillis how long prefilled KV is held for a decode instance to pull it
 * @param kvStallMillis how long a KV send may wait for its reader before the connection is
 *     closed and the pull lets go of its blocks
 * @param kv the KV channel's pull keys, TLS and connection limits
 */
public record PrefillOptions(String instanceId, String modelName, String host, int kvPort,
    int httpPort, int maxBatchTokens, int maxWaiting, long leaseMillis, long kvStallMillis,
    KvChannel kv) {

  /** With the default KV channel: per-lease pull keys, plain TCP, the default limits. */
  public PrefillOptions(String instanceId, String modelName, String host, int kvPort,
      int httpPort, int maxBatchTokens, int maxWaiting, long leaseMillis, long kvStallMillis) {
    this(instanceId, modelName, host, kvPort, httpPort, maxBatchTokens, maxWaiting, leaseMillis,
        kvStallMillis, KvChannel.defaults());
  }

  /** The prefill settings of a configuration (keys under {@code prefill.}). */
  public static PrefillOptions from(DuetConfig config, String modelName) {
    return new PrefillOptions(config.get(Settings.INSTANCE_ID), modelName,
        config.get(Settings.CLUSTER_HOST), config.get(Settings.PREFILL_KV_PORT),
        config.get(Settings.PREFILL_HTTP_PORT), config.get(Settings.PREFILL_MAX_BATCH_TOKENS),
        config.get(Settings.PREFILL_MAX_WAITING), config.get(Settings.PREFILL_LEASE_SECONDS) * 1000L,
        config.get(Settings.PREFILL_KV_STALL_TIMEOUT_SECONDS) * 1000L, KvChannel.from(config));
  }
}
