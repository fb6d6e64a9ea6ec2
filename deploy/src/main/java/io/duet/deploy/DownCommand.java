package io.duet.deploy;

import io.duet.cluster.Topology;
import io.duet.deploy.impl.LaunchFailure;
import io.duet.deploy.impl.LaunchRecord;
import io.duet.deploy.impl.RunDirectory;
import io.duet.deploy.impl.Stopper;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code duet.jar down FILE}: stops every process {@code up} recorded for the topology (SIGTERM,
 * then SIGKILL after the grace period) and checks by their recorded pids that none is left.
 */
@Command(name = "down", mixinStandardHelpOptions = true,
    description = "Stops every process up started for a topology: SIGTERM, then SIGKILL for "
        + "those still running after the grace period; fails if any is left.")
final class DownCommand implements Callable<Integer> {

  @Mixin
  RunOptions options;

  @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "30",
      description = "The grace period after SIGTERM (default: ${DEFAULT-VALUE}).")
  int graceSeconds;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = options.out();
    Topology topology = options.topology();
    RunDirectory run = options.directory(topology);
    LaunchRecord record = LaunchRecord.read(run.record()).orElseThrow(() -> new LaunchFailure(
        "nothing was started from " + topology.file() + " with logs in " + run.dir()
            + " (no " + run.record().getFileName() + ")"));
    new Stopper(out).stop(record, Duration.ofSeconds(graceSeconds));
    // Every recorded process is gone: the record has nothing left to stop.
    Files.delete(run.record());
    out.println(record.cluster() + " is down: no process of it left; logs stay in " + run.dir());
    out.flush();
    return 0;
  }
}
