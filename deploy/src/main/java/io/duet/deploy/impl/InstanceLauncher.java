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
    command.addAll(simulatedInstanceFlags(instance));
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

  /** Heap beyond the KV caches of a simulated instance: Vert.x, Hazelcast, buffers. */
  static final int SIMULATED_HEAP_OVERHEAD_MB = 160;

  /**
   * JVM flags that keep a prefill or decode instance of the simulated engine small, so that the
   * 20 JVMs of an 18P1D fit one machine: a heap of its KV caches and
   * {@link #SIMULATED_HEAP_OVERHEAD_MB}, the serial collector (no GC threads per core), smaller
   * thread stacks, and the client compiler only (it computes nothing the C2 compiler would pay
   * back, and 20 JVMs compiling at once slow the start). None for other instances.
   */
  static List<String> simulatedInstanceFlags(Topology.Instance instance) {
    if (instance.role() == Role.PROXY || !ServiceRuntime.simulated(instance.config())) {
      return List.of();
    }
    int kvMb = instance.config().get(instance.role() == Role.PREFILL
        ? Settings.PREFILL_KV_CACHE_MB : Settings.DECODE_KV_CACHE_MB) * instance.ranks();
    return List.of("-Xmx" + (kvMb + SIMULATED_HEAP_OVERHEAD_MB) + "m", "-XX:+UseSerialGC",
        "-Xss512k", "-XX:TieredStopAtLevel=1");
  }
}
