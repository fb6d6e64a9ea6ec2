package io.duet.decode;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.kv.KvChannel;
import java.util.Objects;

/**
 * Settings of one data-parallel rank of a decode instance.
 *
 * @param httpPort its status port (0 for any free port)
 * @param dpRank this rank
 * @param ranks the ranks of its instance
 * @param maxNumSeqs sequences decoded together at most (the continuous batch)
 * @param maxWaiting requests queued beyond the batch before new ones are refused
 * @param pullTimeoutMillis a KV pull that takes longer fails
 * @param connectionsPerPeer pooled KV connections to one prefill instance
 * @param kv the KV channel's pull keys and TLS
 */
public record DecodeOptions(String instanceId, String modelName, String host, int httpPort,
    int dpRank, int ranks, int maxNumSeqs, int maxWaiting, long pullTimeoutMillis,
    int connectionsPerPeer, KvChannel kv) {

  /** With the default KV channel: per-lease pull keys, plain TCP. */
  public DecodeOptions(String instanceId, String modelName, String host, int httpPort,
      int dpRank, int ranks, int maxNumSeqs, int maxWaiting, long pullTimeoutMillis,
      int connectionsPerPeer) {
    this(instanceId, modelName, host, httpPort, dpRank, ranks, maxNumSeqs, maxWaiting,
        pullTimeoutMillis, connectionsPerPeer, KvChannel.defaults());
  }

  /**
   * The settings of rank {@code rank} of the decode instance a configuration describes (keys
   * under {@code decode.}): one of {@code decode.dp} ranks, with status port
   * {@code decode.http-port + rank} (any free port when {@code decode.http-port} is 0).
   */
  public static DecodeOptions from(DuetConfig config, String modelName, int rank) {
    int ranks = config.get(Settings.DECODE_DP);
    Objects.checkIndex(rank, ranks);
    int firstPort = config.get(Settings.DECODE_HTTP_PORT);
    return new DecodeOptions(config.get(Settings.INSTANCE_ID), modelName,
        config.get(Settings.CLUSTER_HOST), firstPort == 0 ? 0 : firstPort + rank, rank, ranks,
        config.get(Settings.DECODE_MAX_NUM_SEQS), config.get(Settings.DECODE_MAX_WAITING),
        config.get(Settings.DECODE_KV_PULL_TIMEOUT_SECONDS) * 1000L,
        config.get(Settings.DECODE_KV_CONNECTIONS_PER_PEER), KvChannel.from(config));
  }
}
