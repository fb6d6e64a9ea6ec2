package io.duet.deploy.impl;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.cluster.Topology;
import io.duet.contract.Role;
import io.duet.service.ServiceRuntime;
import java.util.List;

/**
 * A topology as {@code duet.jar check} prints it: one row per instance with its role, host,
 * ports (every decode rank's status port among them), ranks and the settings that size it (and
 * the simulated engine, where an instance runs it).
 */
public final class TopologyTable {

  private TopologyTable() {
  }

  public static String render(Topology topology) {
    TextTable table = new TextTable("INSTANCE", "ROLE", "HOST", "PORTS", "RANKS", "SETTINGS");
    for (Topology.Instance instance : topology.instances()) {
      table.row(instance.name(), instance.role().wireName(), instance.host(), ports(instance),
          ranks(instance), settings(instance));
    }
    return table.toString();
  }

  /** {@code cluster 5704, status 9100-9101 (ranks 0-1)}, or one port per kind of port. */
  private static String ports(Topology.Instance instance) {
    DuetConfig c = instance.config();
    String cluster = "cluster " + c.get(Settings.CLUSTER_PORT);
    return switch (instance.role()) {
      case PROXY -> cluster + ", http " + c.get(Settings.PROXY_PORT);
      case PREFILL -> cluster + ", kv " + c.get(Settings.PREFILL_KV_PORT) + ", status "
          + c.get(Settings.PREFILL_HTTP_PORT);
      case DECODE -> {
        List<Topology.Endpoint> ranks = instance.healthEndpoints();
        Topology.Endpoint last = ranks.get(ranks.size() - 1);
        List<Topology.Endpoint> channel = instance.ports().stream()
            .filter(endpoint -> endpoint.setting() == Settings.DECODE_EP_NODES).toList();
        yield cluster + ", status " + (ranks.size() == 1 ? String.valueOf(last.port())
            : ranks.get(0).port() + "-" + last.port() + " (ranks 0-" + last.rank() + ")")
            + (channel.isEmpty() ? "" : ", expert channel " + channel.get(0).port()
                + (channel.size() == 1 ? "" : "-" + channel.get(channel.size() - 1).port()));
      }
    };
  }

  private static String ranks(Topology.Instance instance) {
    DuetConfig c = instance.config();
    return switch (instance.role()) {
      case PROXY -> "-";
      case PREFILL -> "tp " + c.get(Settings.PREFILL_TP);
      case DECODE -> c.get(Settings.DECODE_RANKS) + " = dp " + c.get(Settings.DECODE_DP)
          + " x tp " + c.get(Settings.DECODE_TP) + ", ep " + c.get(Settings.DECODE_EP)
          + (c.get(Settings.DECODE_EP_NODES).isEmpty() ? "" : ", ep-node "
              + c.get(Settings.DECODE_EP_NODE) + " of " + c.get(Settings.DECODE_EP_NODES).size());
    };
  }

  /** What sizes the instance, after {@code engine sim, } when it runs the simulated engine. */
  private static String settings(Topology.Instance instance) {
    DuetConfig c = instance.config();
    String engine = instance.role() != Role.PROXY && ServiceRuntime.simulated(c)
        ? "engine sim, " : "";
    return engine + switch (instance.role()) {
      case PROXY -> "decode-rank-cap " + c.get(Settings.PROXY_DECODE_RANK_CAP) + ", queue-size "
          + c.get(Settings.PROXY_QUEUE_SIZE) + ", policies " + c.get(Settings.PROXY_PREFILL_POLICY)
          + " / " + c.get(Settings.PROXY_DECODE_POLICY);
      case PREFILL -> "max-batch-tokens " + c.get(Settings.PREFILL_MAX_BATCH_TOKENS)
          + ", kv-cache-mb " + c.get(Settings.PREFILL_KV_CACHE_MB);
      case DECODE -> "max-num-seqs " + c.get(Settings.DECODE_MAX_NUM_SEQS)
          + ", num-speculative-tokens " + c.get(Settings.DECODE_NUM_SPECULATIVE_TOKENS)
          + ", decode-gear-list " + c.get(Settings.DECODE_GEAR_LIST) + ", kv-cache-mb "
          + c.get(Settings.DECODE_KV_CACHE_MB);
    };
  }
}
