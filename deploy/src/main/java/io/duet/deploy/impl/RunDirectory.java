package io.duet.deploy.impl;

import io.duet.cluster.Settings;
import io.duet.cluster.Topology;
import java.nio.file.Path;

/**
 * Where a run of a topology keeps its files: each instance's log ({@code <name>.log}, written
 * by the service itself as {@code log.path} asks), its console ({@code <name>.out}: what the
 * JVM printed, start-up failures before logging is set up included) and the record of the
 * processes {@code up} started ({@code launch.json}).
 *
 * @param dir the directory, absolute
 */
public record RunDirectory(Path dir) {

  /**
   * The directory of a topology's run: {@code option} (--log-path) when given, else
   * {@code log.path} as the file and the environment ({@code LOG_PATH}) set it, else
   * {@code ./logs/<cluster name>}.
   */
  public static RunDirectory of(Topology topology, Path option) {
    Path dir = option != null ? option : topology.shared().get(Settings.LOG_PATH)
        .orElse(Path.of("logs", topology.shared().get(Settings.CLUSTER_NAME)));
    return new RunDirectory(dir.toAbsolutePath().normalize());
  }

  /** The instance's own log; its name is the instance id, which names the file. */
  public Path log(String instance) {
    return dir.resolve(instance + ".log");
  }

  /** The instance JVM's standard output and error. */
  public Path console(String instance) {
    return dir.resolve(instance + ".out");
  }

  /** The record of what {@code up} started. */
  public Path record() {
    return dir.resolve("launch.json");
  }
}
