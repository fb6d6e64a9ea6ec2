package io.duet.engine;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * Where the ranks of an expert-parallel decode instance that spans several JVMs meet: the data
 * channel address of every rank of the instance (all JVMs together, in rank order), and which
 * of them this JVM's engines are. {@link Engine#openRanks} with {@code count} engines then opens
 * ranks {@code [firstRank, firstRank + count)} of the instance; an expert-parallel group whose
 * ranks are all in this JVM exchanges in memory, one that spans JVMs over a full mesh of TCP
 * connections between its ranks (one per pair, ranks of this JVM included), each rank listening
 * on its own address's port on {@link #bindHost}.
 *
 * @param rankAddresses every rank's data channel address, as the other JVMs reach it
 * @param firstRank the instance rank of this JVM's first engine
 * @param bindHost the interface this JVM's ranks listen on (e.g. {@code 0.0.0.0}, or the host
 *     of their addresses)
 * @param secret the shared secret both ends of a connection prove in its handshake
 *     (HMAC-SHA256 over fresh nonces); null: connections are not authenticated
 * @param exchangeTimeout how long a rank waits for a peer's frame in an exchange before the
 *     step fails; also bounds a write a peer does not read
 * @param connectTimeout how long opening the ranks waits for every peer to connect
 * @param maxFrameBytes the largest frame a rank sends or accepts
 */
public record ExpertNetwork(List<InetSocketAddress> rankAddresses, int firstRank,
    String bindHost, String secret, Duration exchangeTimeout, Duration connectTimeout,
    int maxFrameBytes) {

  public static final Duration DEFAULT_EXCHANGE_TIMEOUT = Duration.ofSeconds(30);
  public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(120);
  public static final int DEFAULT_MAX_FRAME_BYTES = 64 << 20;

  public ExpertNetwork {
    rankAddresses = List.copyOf(rankAddresses);
    Objects.requireNonNull(bindHost, "bindHost");
    if (firstRank < 0 || firstRank >= rankAddresses.size()) {
      throw new IllegalArgumentException("first rank " + firstRank + " is not one of the "
          + rankAddresses.size() + " ranks");
    }
    if (secret != null && secret.isEmpty()) {
      throw new IllegalArgumentException("the expert channel's secret is empty");
    }
    if (exchangeTimeout.isNegative() || exchangeTimeout.isZero()
        || connectTimeout.isNegative() || connectTimeout.isZero()) {
      throw new IllegalArgumentException("the expert channel's timeouts must be positive");
    }
    if (maxFrameBytes < 1024) {
      throw new IllegalArgumentException("maxFrameBytes must be at least 1024, was "
          + maxFrameBytes);
    }
  }

  /** The ranks at {@code rankAddresses}, this JVM's from {@code firstRank}, with the defaults. */
  public static ExpertNetwork of(List<InetSocketAddress> rankAddresses, int firstRank,
      String bindHost, String secret) {
    return new ExpertNetwork(rankAddresses, firstRank, bindHost, secret,
        DEFAULT_EXCHANGE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_FRAME_BYTES);
  }

  /** The same with {@code timeout} as its exchange timeout. */
  public ExpertNetwork withExchangeTimeout(Duration timeout) {
    return new ExpertNetwork(rankAddresses, firstRank, bindHost, secret, timeout,
        connectTimeout, maxFrameBytes);
  }

  /** Ranks of the instance, over every JVM. */
  public int ranks() {
    return rankAddresses.size();
  }

  @Override
  public String toString() {
    // the secret stays out of logs
    return "ExpertNetwork{ranks=" + rankAddresses + ", firstRank=" + firstRank + ", bindHost="
        + bindHost + ", secret=" + (secret == null ? "none" : "set") + ", exchangeTimeout="
        + exchangeTimeout + ", connectTimeout=" + connectTimeout + ", maxFrameBytes="
        + maxFrameBytes + "}";
  }
}
