package io.duet.deploy.impl;

import io.duet.cluster.ConfigFlags;
import io.duet.cluster.Settings;
import io.duet.cluster.Topology;
import io.duet.contract.Role;
import io.duet.engine.launch.VectorLauncher;
import io.duet.service.ServiceRuntime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Starts the JVM of one instance of a topology: {@code java <flags> -jar <role>-service.jar
 * --config FILE --instance NAME --log-path DIR}, with the JVM flags the services need given
 * directly (so the service does not relaunch itself: one process per instance), its console
 * appended to {@code <name>.out}, its warm cache in {@code warm-cache/} of the run directory
 * unless the configuration names one, and, where {@code setsid} exists, in a session of its own so
 * that the terminal's signals (Ctrl-C, hang-up) do not reach it once {@code up} has returned.
 */
public final class InstanceLauncher {

  private static final Path SETSID = Path.of("/usr/bin/setsid");

  private final Path topology;
  private final RunDirectory run;
  private final Map<Role, Path> jars;

  public InstanceLauncher(Path topology, RunDirectory run, Map<Role, Path> jars) {
    this.topology = topology;
    this.run = run;
    this.jars = jars;
  }

  /** A started instance: its process, which outlives this JVM, and the record of it. */
  public record Launched(Process process, LaunchRecord.Started record) {
  }

  /** Starts the instance. */
  public Launched start(Topology.Instance instance) throws IOException {
    List<String> command = new ArrayList<>();
    // setsid execs the command in place: the pid is the JVM's.
    if (Files.isExecutable(SETSID)) {
      command.add(SETSID.toString());
    }
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.addAll(ServiceRuntime.directLaunchFlags());
    command.addAll(List.of("-jar", jars.get(instance.role()).toString(),
        "--config", topology.toString(), ConfigFlags.INSTANCE_FLAG, instance.name(),
        Settings.LOG_PATH.flag().orElseThrow().name(), run.dir().toString()));
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(run.console(instance.name()).toFile()));
    VectorLauncher.addHugePageTunable(builder.environment());
    // what a restart reuses (the model's content hash) kept beside the logs, unless configured
    if (instance.config().get(Settings.MODEL_WARM_CACHE).isEmpty()) {
      builder.environment().put(Settings.MODEL_WARM_CACHE.env().orElseThrow(),
          run.dir().resolve("warm-cache").toString());
    }
    Process process = builder.start();
    process.getOutputStream().close();
    return new Launched(process, LaunchRecord.Started.of(instance.name(), process, command));
  }
}
