package io.duet.deploy.impl;

import io.duet.cluster.Topology;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * {@code duet.jar status}: a row for every instance of the topology and every rank of a decode
 * instance, with its state, load and KV use, read from the registry's entries or, when the
 * registry cannot be asked, from each endpoint's {@code /health}; entries of the registry that
 * the file does not name are listed too.
 */
public final class StatusReport {

  private final TextTable table = new TextTable("INSTANCE", "RANK", "ROLE", "ENDPOINT", "STATE",
      "RUNNING", "WAITING", "KV BLOCKS");
  private final List<String> down = new ArrayList<>();
  private int rows;

  private StatusReport() {
  }

  /** The report from the registry's entries. */
  public static StatusReport fromRegistry(Topology topology, List<InstanceInfo> entries) {
    Map<String, InstanceInfo> byKey = new LinkedHashMap<>();
    entries.forEach(info -> byKey.put(info.key(), info));
    StatusReport report = new StatusReport();
    for (Topology.Instance instance : topology.instances()) {
      for (Topology.Endpoint endpoint : instance.healthEndpoints()) {
        InstanceInfo info = byKey.remove(InstanceInfo.key(instance.name(),
            Math.max(0, endpoint.rank())));
        report.row(instance, endpoint, info == null ? "not in the registry" : null, info);
      }
    }
    byKey.values().forEach(info -> report.table.row(info.instanceId(),
        info.role() == Role.DECODE ? String.valueOf(info.dpRank()) : "-", info.role().wireName(),
        info.host() + ":" + info.httpPort(), "serving (not in the file)", running(info),
        waiting(info), kv(info)));
    return report;
  }

  /** The report from each endpoint's {@code /health}. */
  public static StatusReport fromHealth(Topology topology, HealthProbe probe) {
    StatusReport report = new StatusReport();
    for (Topology.Instance instance : topology.instances()) {
      for (Topology.Endpoint endpoint : instance.healthEndpoints()) {
        HealthProbe.Answer answer = probe.get(endpoint);
        String notServing = answer.notServing(instance, endpoint);
        report.row(instance, endpoint, notServing,
            notServing == null ? answer.instance().orElse(null) : null);
      }
    }
    return report;
  }

  /** Whether every instance and rank of the topology serves. */
  public boolean allServing() {
    return down.isEmpty();
  }

  /**
   * A row of the topology's.
   *
   * @param downBecause why it is down; null when it serves
   * @param info its entry, when known
   */
  private void row(Topology.Instance instance, Topology.Endpoint endpoint, String downBecause,
      InstanceInfo info) {
    String rank = endpoint.rank() >= 0 ? String.valueOf(endpoint.rank()) : "-";
    Optional<InstanceInfo> load = Optional.ofNullable(info);
    table.row(instance.name(), rank, instance.role().wireName(),
        endpoint.host() + ":" + endpoint.port(),
        downBecause == null ? "serving" : "down (" + downBecause + ")",
        load.map(StatusReport::running).orElse("-"), load.map(StatusReport::waiting).orElse("-"),
        load.map(StatusReport::kv).orElse("-"));
    rows++;
    if (downBecause != null) {
      down.add(instance.name() + (endpoint.rank() >= 0 ? " rank " + rank : ""));
    }
  }

  private static String running(InstanceInfo info) {
    return info.role() == Role.PROXY ? "-" : String.valueOf(info.load().running());
  }

  private static String waiting(InstanceInfo info) {
    return info.role() == Role.PROXY ? "-" : String.valueOf(info.load().waiting());
  }

  private static String kv(InstanceInfo info) {
    InstanceInfo.Load load = info.load();
    return info.role() == Role.PROXY || load.kvBlocksTotal() == 0 ? "-"
        : String.format(Locale.ROOT, "%d/%d (%.0f%%)", load.kvBlocksUsed(), load.kvBlocksTotal(),
            100.0 * load.kvBlocksUsed() / load.kvBlocksTotal());
  }

  @Override
  public String toString() {
    return table.toString() + (rows - down.size()) + " of " + rows + " serving"
        + (down.isEmpty() ? "" : "; down: " + String.join(", ", down)) + "\n";
  }
}
