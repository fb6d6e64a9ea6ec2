package io.duet.deploy;

import io.duet.cluster.Topology;
import io.duet.deploy.impl.LaunchFailure;
import io.duet.deploy.impl.LogTail;
import io.duet.deploy.impl.RunDirectory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code duet.jar logs FILE INSTANCE}: an instance's log from the run directory. */
@Command(name = "logs", mixinStandardHelpOptions = true,
    description = "Prints an instance's log (<log path>/<instance>.log, written by the "
        + "service), or with --console what its JVM printed (<instance>.out).")
final class LogsCommand implements Callable<Integer> {

  @Mixin
  RunOptions options;

  @Parameters(index = "1", paramLabel = "INSTANCE", description = "The instance's name.")
  String instance;

  @Option(names = "--console",
      description = "Print the JVM's console instead: start-up failures before logging is set "
          + "up show there.")
  boolean console;

  @Option(names = "--tail", paramLabel = "LINES", defaultValue = "0",
      description = "Only the last LINES lines (default: all).")
  int tail;

  @Override
  public Integer call() {
    Topology topology = options.topology();
    if (topology.instance(instance).isEmpty()) {
      throw new LaunchFailure("no instance " + instance + " in " + topology.file() + "; it has "
          + topology.instances().stream().map(Topology.Instance::name)
              .collect(Collectors.joining(", ")));
    }
    RunDirectory run = options.directory(topology);
    Path log = console ? run.console(instance) : run.log(instance);
    if (!Files.isRegularFile(log)) {
      throw new LaunchFailure("no log of " + instance + " at " + log + " (started by up with "
          + "this log path?)");
    }
    options.out().print(LogTail.of(log, tail));
    options.out().flush();
    return 0;
  }
}
