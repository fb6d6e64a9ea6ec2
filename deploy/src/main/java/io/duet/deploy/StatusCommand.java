package io.duet.deploy;

import io.duet.cluster.Settings;
import io.duet.cluster.Topology;
import io.duet.deploy.impl.ClusterView;
import io.duet.deploy.impl.HealthProbe;
import io.duet.deploy.impl.LaunchFailure;
import io.duet.deploy.impl.StatusReport;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code duet.jar status FILE}: every instance and decode rank of the topology with its state,
 * load and KV use, from the cluster's registry, else from each one's {@code /health}; says
 * which. Exits 0 when every one serves, 1 otherwise.
 */
@Command(name = "status", mixinStandardHelpOptions = true,
    description = "Prints every instance and decode rank of a topology with its state, load and "
        + "KV use: from the registry (joining the cluster as a Hazelcast lite member), else "
        + "from each one's GET /health. Exit 0 when all serve, 1 otherwise.")
final class StatusCommand implements Callable<Integer> {

  @Mixin
  RunOptions options;

  @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "30",
      description = "How long joining the cluster, its answer, and each /health may take "
          + "(default: ${DEFAULT-VALUE}).")
  int timeoutSeconds;

  @Override
  public Integer call() throws InterruptedException {
    PrintWriter out = options.out();
    Topology topology = options.topology();
    String cluster = topology.shared().get(Settings.CLUSTER_NAME);
    StatusReport report;
    try {
      report = StatusReport.fromRegistry(topology,
          ClusterView.registry(topology, Duration.ofSeconds(timeoutSeconds)));
      out.println(cluster + ", from the cluster's registry (joined as a lite member):");
    } catch (LaunchFailure noRegistry) {
      report = StatusReport.fromHealth(topology,
          new HealthProbe(Duration.ofSeconds(timeoutSeconds)));
      out.println(cluster + ", from each instance's /health (no registry: "
          + noRegistry.getMessage() + "):");
    }
    out.print(report);
    out.flush();
    return report.allServing() ? 0 : 1;
  }
}
