package io.duet.deploy.impl;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * What {@code up} started, as {@code launch.json} in the run directory: each instance's process
 * id, the instant that process started and its command. A pid alone could name another process
 * by the time {@code down} runs; the pid and its start instant together name one process.
 *
 * @param cluster the cluster name
 * @param topology the topology file
 * @param started the processes, in the order they were started
 */
public record LaunchRecord(String cluster, Path topology, List<Started> started) {

  /**
   * One process started for an instance.
   *
   * @param startedAt when the process started, as the system tells it; null if it did not
   */
  public record Started(String instance, long pid, Instant startedAt, List<String> command) {

    /** A just started process. */
    public static Started of(String instance, Process process, List<String> command) {
      return new Started(instance, process.pid(),
          process.info().startInstant().orElse(null), command);
    }

    /** The process, while it runs and is still the one that was started. */
    public Optional<ProcessHandle> process() {
      return ProcessHandle.of(pid).filter(ProcessHandle::isAlive).filter(handle ->
          startedAt == null || handle.info().startInstant().map(startedAt::equals).orElse(true));
    }

    JsonObject toJson() {
      return new JsonObject().put("instance", instance).put("pid", pid)
          .put("startedAt", startedAt == null ? null : startedAt.toString())
          .put("command", new JsonArray(new ArrayList<>(command)));
    }

    static Started fromJson(JsonObject json) {
      String startedAt = json.getString("startedAt");
      return new Started(json.getString("instance"), json.getLong("pid"),
          startedAt == null ? null : Instant.parse(startedAt),
          json.getJsonArray("command").stream().map(String::valueOf).toList());
    }
  }

  public LaunchRecord {
    started = List.copyOf(started);
  }

  /** This record with one more process. */
  public LaunchRecord with(Started process) {
    List<Started> all = new ArrayList<>(started);
    all.add(process);
    return new LaunchRecord(cluster, topology, all);
  }

  /** The processes of the record that still run. */
  public List<Started> running() {
    return started.stream().filter(process -> process.process().isPresent()).toList();
  }

  /** Writes the record to {@code file}, replacing it whole (never half written). */
  public void write(Path file) {
    JsonArray processes = new JsonArray();
    started.forEach(process -> processes.add(process.toJson()));
    JsonObject json = new JsonObject().put("cluster", cluster)
        .put("topology", topology.toString()).put("started", processes);
    try {
      Path partial = file.resolveSibling(file.getFileName() + ".partial");
      Files.writeString(partial, json.encodePrettily());
      Files.move(partial, file, StandardCopyOption.REPLACE_EXISTING,
          StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file, e);
    }
  }

  /** The record in {@code file}, if there is one. */
  public static Optional<LaunchRecord> read(Path file) {
    if (!Files.isRegularFile(file)) {
      return Optional.empty();
    }
    try {
      JsonObject json = new JsonObject(Files.readString(file));
      List<Started> started = json.getJsonArray("started").stream()
          .map(item -> Started.fromJson((JsonObject) item)).toList();
      return Optional.of(new LaunchRecord(json.getString("cluster"),
          Path.of(json.getString("topology")), started));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file, e);
    }
  }
}
