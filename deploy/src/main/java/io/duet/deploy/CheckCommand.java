package io.duet.deploy;

import io.duet.cluster.InvalidConfigException;
import io.duet.cluster.Settings;
import io.duet.cluster.Topology;
import io.duet.deploy.impl.ModelCheck;
import io.duet.deploy.impl.Topologies;
import io.duet.deploy.impl.TopologyTable;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code duet.jar check FILE}: the whole topology checked, every problem printed at once (exit
 * 1), or the topology printed as a table (exit 0). Starts nothing.
 */
@Command(name = "check", mixinStandardHelpOptions = true,
    description = "Validates a topology file: prints every problem (exit 1) or the topology as "
        + "a table (exit 0). The model is read, to check decode.ep against its experts, when "
        + "model.path (or MODEL_PATH) names a file here. Starts nothing.")
final class CheckCommand implements Callable<Integer> {

  @Parameters(index = "0", paramLabel = "FILE", description = "The topology file.")
  Path file;

  @Spec
  CommandSpec spec;

  @Override
  public Integer call() {
    Topology topology = Topologies.load(file, System.getenv());
    ModelCheck.Result models = ModelCheck.run(topology);
    if (!models.problems().isEmpty()) {
      throw new InvalidConfigException(models.problems());
    }
    PrintWriter out = spec.commandLine().getOut();
    out.println(topology.file() + ": cluster " + topology.shared().get(Settings.CLUSTER_NAME)
        + ", " + topology.instances().size() + " instances, valid");
    out.print(TopologyTable.render(topology));
    out.println("members: " + String.join(", ",
        topology.shared().get(Settings.CLUSTER_MEMBERS)));
    models.notes().forEach(out::println);
    out.flush();
    return 0;
  }
}
