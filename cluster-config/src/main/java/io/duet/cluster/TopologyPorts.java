package io.duet.cluster;

import io.duet.cluster.InvalidConfigException.Problem;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The ports of a topology's instances: each is fixed (a topology names every port, so that
 * every process and the launcher know where each instance listens), and no two on one host are
 * the same, a decode instance's rank status and data-channel ports included.
 */
final class TopologyPorts {

  /** One port of one instance; {@code rank} is -1 unless it is a decode rank's own port. */
  private record Claim(String host, int port, String key, int rank) {

    String describe() {
      return rank < 0 ? String.valueOf(port) : "rank " + rank + "'s "
          + (key.endsWith(Settings.DECODE_EP_NODES.key()) ? "data-channel" : "status")
          + " port " + port;
    }

    String owner() {
      return rank < 0 ? key : key + " (rank " + rank + ")";
    }
  }

  private TopologyPorts() {
  }

  /** The problems of the instances' ports, in the order of the instances. */
  static List<Problem> problems(List<Topology.Instance> instances) {
    List<Problem> problems = new ArrayList<>();
    Map<String, Claim> taken = new HashMap<>();
    for (Topology.Instance instance : instances) {
      for (Topology.Endpoint endpoint : instance.ports()) {
        Setting<?> setting = endpoint.setting();
        DuetConfig config = instance.config();
        String key = setting == Settings.CLUSTER_PORT
            ? instance.section().path() + "." + TopologySection.CLUSTER_PORT
            : instance.section().path() + "." + setting.key();
        String found = Validator.found(key, config.get(setting));
        if (Integer.valueOf(0).equals(config.get(setting))) {
          if (endpoint.rank() > 0) {
            continue; // the rank 0 endpoint of the same setting said it
          }
          problems.add(new Problem(key, "a fixed port (a topology names every port; 0 would be "
              + "any free one)", found, config.origin(setting.key())));
          continue;
        }
        Claim claim = new Claim(endpoint.host(), endpoint.port(), key, endpoint.rank());
        Claim earlier = taken.putIfAbsent(claim.host() + ":" + claim.port(), claim);
        if (earlier != null) {
          problems.add(new Problem(key, "a port nothing else of the topology uses on "
              + claim.host() + " (" + claim.describe() + " is also " + earlier.owner() + ")",
              found, config.origin(setting.key())));
        }
      }
    }
    return problems;
  }
}
