package io.duet.decode;

import io.duet.cluster.DuetConfig;

/**
 * Settings of one decode instance (one data-parallel rank).
 *
 * @param maxNumSeqs sequences decoded together at most (the continuous batch)
 * @param maxWaiting requests queued beyond the batch before new ones are refused
 * @param pullTimeoutMillis a KV pull that takes longer fails
 * @param connectionsPerPeer pooled KV connections to one prefill instance
 */
public record DecodeOptions(String instanceId, String modelName, String host, int httpPort,
    int dpRank, int maxNumSeqs, int maxWaiting, long pullTimeoutMillis, int connectionsPerPeer) {

  /** The decode settings of a configuration (keys under {@code decode.}). */
  public static DecodeOptions from(DuetConfig config, String modelName) {
    return new DecodeOptions(config.instanceId(), modelName, config.clusterHost(),
        config.decodeHttpPort(), config.dpRank(), config.decodeMaxNumSeqs(),
        config.decodeMaxWaiting(), config.decodeKvPullTimeoutSeconds() * 1000L,
        config.decodeKvConnectionsPerPeer());
  }
}
