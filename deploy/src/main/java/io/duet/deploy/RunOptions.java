package io.duet.deploy;

import io.duet.cluster.Topology;
import io.duet.deploy.impl.RunDirectory;
import io.duet.deploy.impl.Topologies;
import java.io.PrintWriter;
import java.nio.file.Path;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** What the commands on a run of a topology share: the file, and where the run's files go. */
final class RunOptions {

  @Parameters(index = "0", paramLabel = "FILE", description = "The topology file.")
  Path file;

  @Option(names = "--log-path", paramLabel = "DIR",
      description = "Where the instances' logs and the record of the processes started go "
          + "(default: $LOG_PATH, else log.path of the file, else ./logs/<cluster name>).")
  Path logPath;

  @Spec(Spec.Target.MIXEE)
  CommandSpec command;

  /** Where the command prints. */
  PrintWriter out() {
    return command.commandLine().getOut();
  }

  /** The topology, read with this process's environment, as the instances read it. */
  Topology topology() {
    return Topologies.load(file, System.getenv());
  }

  RunDirectory directory(Topology topology) {
    return RunDirectory.of(topology, logPath);
  }
}
