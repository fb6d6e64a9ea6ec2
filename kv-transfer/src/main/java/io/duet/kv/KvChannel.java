package io.duet.kv;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;

/**
 * How the KV channel is secured and bounded, as both of its ends configure it: the pull keys, TLS
 * (null: plain TCP), and the limits of the KV server's connections.
 *
 * @param auth how pull keys are made and proven
 * @param tls TLS on the channel, or null
 * @param frameTimeoutMillis a client frame begun and not finished within this is a dead or
 *     hostile peer: the connection is closed
 * @param idleTimeoutSeconds a connection that neither reads nor writes this long is closed
 * @param maxConnections connections a KV server holds at once; more are closed on accept
 * @param sameJvmHandoff whether a decode rank takes the KV of a prefill instance in its own JVM
 *     from memory rather than over TCP
 */
public record KvChannel(PullAuth auth, KvTls tls, long frameTimeoutMillis,
    int idleTimeoutSeconds, int maxConnections, boolean sameJvmHandoff) {

  /** Per-lease keys, plain TCP, the default limits and the default same-JVM handoff. */
  public static KvChannel defaults() {
    return new KvChannel(PullAuth.perLease(), null,
        Settings.PREFILL_KV_FRAME_TIMEOUT_SECONDS.defaultValue() * 1000L,
        Settings.PREFILL_KV_IDLE_TIMEOUT_SECONDS.defaultValue(),
        Settings.PREFILL_KV_MAX_CONNECTIONS.defaultValue(),
        Settings.KV_TRANSFER_SAME_JVM_HANDOFF.defaultValue());
  }

  /** The KV channel a configuration describes ({@code cluster.secret}, {@code kv-tls.*}). */
  public static KvChannel from(DuetConfig config) {
    PullAuth auth = config.get(Settings.CLUSTER_SECRET).map(PullAuth::withSecret)
        .orElseGet(PullAuth::perLease);
    KvTls tls = config.get(Settings.KV_TLS_CERT).map(cert -> new KvTls(cert,
        config.get(Settings.KV_TLS_KEY).orElse(null), config.get(Settings.KV_TLS_TRUST)
        .orElse(cert))).orElse(null);
    return new KvChannel(auth, tls, config.get(Settings.PREFILL_KV_FRAME_TIMEOUT_SECONDS) * 1000L,
        config.get(Settings.PREFILL_KV_IDLE_TIMEOUT_SECONDS),
        config.get(Settings.PREFILL_KV_MAX_CONNECTIONS),
        config.get(Settings.KV_TRANSFER_SAME_JVM_HANDOFF));
  }

  public KvChannel withTls(KvTls tls) {
    return new KvChannel(auth, tls, frameTimeoutMillis, idleTimeoutSeconds, maxConnections,
        sameJvmHandoff);
  }

  public KvChannel withLimits(long frameTimeoutMillis, int idleTimeoutSeconds,
      int maxConnections) {
    return new KvChannel(auth, tls, frameTimeoutMillis, idleTimeoutSeconds, maxConnections,
        sameJvmHandoff);
  }

  public KvChannel withSameJvmHandoff(boolean sameJvmHandoff) {
    return new KvChannel(auth, tls, frameTimeoutMillis, idleTimeoutSeconds, maxConnections,
        sameJvmHandoff);
  }
}
