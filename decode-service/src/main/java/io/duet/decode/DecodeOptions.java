package io.duet.decode;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;

/**
 * Settings of one data-parallel rank of a decode instance.
 *
 * @param dpRank this rank
 * @param ranks the ranks of its instance
 * @param maxNumSeqs sequences decoded together at most (the continuous batch)
 * @param maxWaiting requests queued beyond the batch before new ones are refused
 * @param pullTimeoutMillis a KV pull that takes longer fails
 * @param connectionsPerPeer pooled KV connections to one prefill instance
 */
public record DecodeOptions(String instanceId, String modelName, String host, int httpPort,
    int dpRank, int ranks, int maxNumSeqs, int maxWaiting, long pullTimeoutMillis, int connectionsPerPeer) {

  /** The decode settings of a configuration (keys under {@code decode.}). */
  public static DecodeOptions from(DuetConfig config, String modelName) {
    return new DecodeOptions(config.get(Settings.INSTANCE_ID), modelName,
        config.get(Settings.CLUSTER_HOST), config.get(Settings.DECODE_HTTP_PORT),
        config.get(Settings.INSTANCE_DP_RANK), 1, config.get(Settings.DECODE_MAX_NUM_SEQS),
        config.get(Settings.DECODE_MAX_WAITING),
        config.get(Settings.DECODE_KV_PULL_TIMEOUT_SECONDS) * 1000L,
        config.get(Settings.DECODE_KV_CONNECTIONS_PER_PEER));
  }
}
