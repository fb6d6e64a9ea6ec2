package io.duet.engine.impl;

import io.duet.engine.ExpertNetwork;
import io.duet.engine.spi.ExpertExchange;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

/**
 * The exchange ends of the engines one JVM opens: the ranks of an instance form groups of
 * {@code ep} consecutive ranks; a group whose ranks are all in this JVM exchanges in memory
 * ({@link LocalExpertExchange}), one that spans JVMs over TCP ({@link SocketExpertExchange}).
 */
final class ExpertGroups {

  private ExpertGroups() {
  }

  /**
   * The ends of this JVM's {@code count} ranks, in order: ranks {@code [first, first + count)}
   * of the instance that {@code network} describes, or of {@code count} ranks when it is null.
   *
   * @throws io.duet.engine.spi.ExpertExchangeException when a group spanning JVMs cannot connect
   */
  static List<ExpertExchange> open(ExpertNetwork network, int ep, int count) {
    if (ep == 1) {
      return IntStream.range(0, count).mapToObj(i -> ExpertExchange.solo()).toList();
    }
    int first = network == null ? 0 : network.firstRank();
    List<ExpertExchange> ends = new ArrayList<>(count);
    try {
      for (int rank = first; rank < first + count; ) {
        int group = rank / ep;
        int groupEnd = Math.min((group + 1) * ep, first + count);
        List<Integer> members = new ArrayList<>();
        for (int r = rank; r < groupEnd; r++) {
          members.add(r - group * ep);
        }
        if (members.size() == ep) {
          LocalExpertExchange local = new LocalExpertExchange(ep,
              LocalExpertExchange.DEFAULT_TIMEOUT_MILLIS);
          members.forEach(member -> ends.add(local.rank(member)));
        } else {
          ends.addAll(SocketExpertExchange.open(network, group, ep, members));
        }
        rank = groupEnd;
      }
      return ends;
    } catch (RuntimeException | Error e) {
      ends.forEach(ExpertExchange::leave);
      throw e;
    }
  }

  /**
   * The instance's ranks over all JVMs, checked against {@code count} engines in this JVM.
   *
   * @throws IllegalArgumentException when this JVM's ranks run past the instance's
   */
  static int instanceRanks(ExpertNetwork network, int count) {
    if (network == null) {
      return count;
    }
    if (network.firstRank() + count > network.ranks()) {
      throw new IllegalArgumentException("ranks " + network.firstRank() + " to "
          + (network.firstRank() + count - 1) + " are not all among the instance's "
          + network.ranks() + " ranks");
    }
    return network.ranks();
  }
}
