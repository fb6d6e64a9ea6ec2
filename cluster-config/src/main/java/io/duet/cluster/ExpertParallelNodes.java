package io.duet.cluster;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.contract.Role;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A decode instance whose expert-parallel groups span several JVMs ({@code decode.ep-nodes}):
 * each node is a decode instance of its own holding {@code decode.dp} consecutive ranks of the
 * whole, and its ranks reach the other nodes' over a data channel of their own. This reads the
 * nodes' addresses out of a configuration and checks that the nodes of a topology agree.
 */
public final class ExpertParallelNodes {

  private ExpertParallelNodes() {
  }

  /**
   * The data-channel address of every rank of the expert-parallel instance, all nodes together,
   * in rank order (node {@code n}'s rank {@code r} at its PORT + r); empty when every rank is in
   * this JVM ({@code decode.ep-nodes} empty).
   */
  public static List<InetSocketAddress> rankAddresses(DuetConfig config) {
    int dp = config.get(Settings.DECODE_DP);
    List<InetSocketAddress> addresses = new ArrayList<>();
    for (String node : config.get(Settings.DECODE_EP_NODES)) {
      InetSocketAddress base = address(node);
      for (int rank = 0; rank < dp; rank++) {
        addresses.add(new InetSocketAddress(base.getHostString(), base.getPort() + rank));
      }
    }
    return addresses;
  }

  /** This node's own data-channel address, whose host its ranks listen on. */
  public static InetSocketAddress ownNode(DuetConfig config) {
    return address(config.get(Settings.DECODE_EP_NODES).get(config.get(Settings.DECODE_EP_NODE)));
  }

  /** This node's first rank in the expert-parallel instance. */
  public static int firstRank(DuetConfig config) {
    return config.get(Settings.DECODE_EP_NODE) * config.get(Settings.DECODE_DP);
  }

  /**
   * Whether groups of {@code ep} ranks each lie in one JVM or span whole ones: {@code ep}
   * divides decode.dp, or is a multiple of it that divides all the nodes' ranks. So a node's
   * ranks belong to one group or to groups of their own, and the nodes of a group warm up and
   * step as one.
   */
  static boolean groupsFit(DuetConfig config, int ep) {
    int dp = config.get(Settings.DECODE_DP);
    int ranks = dp * Math.max(1, config.get(Settings.DECODE_EP_NODES).size());
    return dp % ep == 0 || (ep % dp == 0 && ranks % ep == 0);
  }

  /** Whether every node is HOST:PORT with room for decode.dp ports from PORT. */
  static boolean wellFormed(DuetConfig config, List<String> nodes) {
    int dp = config.get(Settings.DECODE_DP);
    for (String node : nodes) {
      int colon = node.lastIndexOf(':');
      if (colon <= 0) {
        return false;
      }
      try {
        int port = Integer.parseInt(node.substring(colon + 1));
        if (port < 1 || port + dp - 1 > 65535) {
          return false;
        }
      } catch (NumberFormatException e) {
        return false;
      }
    }
    return true;
  }

  /**
   * The data-channel ports of a node's ranks, on its own host: decode.ep-nodes' item
   * decode.ep-node, plus the rank; empty when every rank is in this JVM.
   */
  static List<Integer> ownPorts(DuetConfig config) {
    if (!spansNodes(config)) {
      return List.of();
    }
    int base = ownNode(config).getPort();
    List<Integer> ports = new ArrayList<>();
    for (int rank = 0; rank < config.get(Settings.DECODE_DP); rank++) {
      ports.add(base + rank);
    }
    return ports;
  }

  /**
   * What is wrong with the topology's expert-parallel nodes: the decode instances naming the
   * same decode.ep-nodes must be one per item, each at its item's host, with the same
   * decode.dp and decode.ep.
   */
  static List<Problem> problems(List<Topology.Instance> instances) {
    Map<List<String>, List<Topology.Instance>> byNodes = new LinkedHashMap<>();
    for (Topology.Instance instance : instances) {
      if (instance.role() == Role.DECODE && spansNodes(instance.config())) {
        byNodes.computeIfAbsent(instance.config().get(Settings.DECODE_EP_NODES),
            n -> new ArrayList<>()).add(instance);
      }
    }
    List<Problem> problems = new ArrayList<>();
    byNodes.forEach((nodes, members) -> {
      Topology.Instance first = members.get(0);
      Map<Integer, String> taken = new LinkedHashMap<>();
      for (Topology.Instance member : members) {
        DuetConfig config = member.config();
        int node = config.get(Settings.DECODE_EP_NODE);
        String earlier = taken.putIfAbsent(node, member.name());
        if (earlier != null) {
          problems.add(problem(member, Settings.DECODE_EP_NODE.key(), "a node index no other "
              + "decode instance with the same decode.ep-nodes has (" + earlier + " has it)"));
        } else if (!ownNode(config).getHostString().equals(member.host())) {
          problems.add(problem(member, Settings.DECODE_EP_NODES.key(), "item " + node
              + ", this node's, on its cluster.host " + member.host()));
        }
        for (Setting<Integer> same : List.of(Settings.DECODE_DP, Settings.DECODE_EP)) {
          if (!config.get(same).equals(first.config().get(same))) {
            problems.add(problem(member, same.key(), first.config().get(same) + ", as "
                + first.name() + " of the same decode.ep-nodes has"));
          }
        }
      }
      if (members.size() != nodes.size()) {
        problems.add(problem(first, Settings.DECODE_EP_NODES.key(), "one decode instance per "
            + "item, but " + members.size() + " of the topology name these " + nodes.size()
            + " nodes"));
      }
    });
    return problems;
  }

  /**
   * Whether the configuration names nodes and its own among them, well formed; one that does
   * not has a problem of its settings' conditions reported already.
   */
  private static boolean spansNodes(DuetConfig config) {
    List<String> nodes = config.get(Settings.DECODE_EP_NODES);
    return !nodes.isEmpty() && wellFormed(config, nodes)
        && config.get(Settings.DECODE_EP_NODE) < nodes.size();
  }

  private static Problem problem(Topology.Instance instance, String key, String expected) {
    return new Problem(instance.section().path() + "." + key, expected,
        Validator.found(key, instance.config().get(Settings.find(key).orElseThrow())),
        instance.config().origin(key));
  }

  private static InetSocketAddress address(String node) {
    int colon = node.lastIndexOf(':');
    String host = node.substring(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    return InetSocketAddress.createUnresolved(host, Integer.parseInt(node.substring(colon + 1)));
  }
}
