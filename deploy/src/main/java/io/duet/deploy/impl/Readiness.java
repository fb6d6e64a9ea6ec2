package io.duet.deploy.impl;

import io.duet.cluster.Topology;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Waits for the instances {@code up} started to serve: every health endpoint of every instance
 * ({@link Topology.Instance#healthEndpoints}: the proxy's, each prefill instance's and each
 * decode rank's) answers {@code GET /health} as {@link HealthProbe.Answer#notServing} wants. Fails
 * at once when an instance's process exits, and after the timeout otherwise, with the reason
 * and the last lines of the instance's console.
 */
public final class Readiness {

  private static final long POLL_MILLIS = 250;
  private static final int TAIL_LINES = 40;

  /** Short: a probe that gets no answer is simply made again at the next poll. */
  private final HealthProbe probe = new HealthProbe(Duration.ofSeconds(2));
  private final RunDirectory run;
  private final PrintWriter out;

  public Readiness(RunDirectory run, PrintWriter out) {
    this.run = run;
    this.out = out;
  }

  /**
   * Returns when every instance serves.
   *
   * @param processes the process of each instance, by name
   * @throws LaunchFailure when a process exits or the timeout passes first
   */
  public void await(List<Topology.Instance> instances, Map<String, Process> processes,
      Duration timeout) throws InterruptedException {
    long start = System.nanoTime();
    long deadline = start + timeout.toNanos();
    Map<Topology.Instance, List<Topology.Endpoint>> waiting = new LinkedHashMap<>();
    instances.forEach(instance ->
        waiting.put(instance, new ArrayList<>(instance.healthEndpoints())));
    Map<Topology.Endpoint, String> last = new LinkedHashMap<>();
    while (!waiting.isEmpty()) {
      for (Topology.Instance instance : waiting.keySet()) {
        Process process = processes.get(instance.name());
        if (!process.isAlive()) {
          throw failure(instance, instance.name() + " (pid " + process.pid() + ") exited with "
              + process.exitValue() + " before it served");
        }
      }
      for (var entry : List.copyOf(waiting.entrySet())) {
        Topology.Instance instance = entry.getKey();
        entry.getValue().removeIf(endpoint -> {
          String notServing = probe.get(endpoint).notServing(instance, endpoint);
          last.put(endpoint, notServing);
          return notServing == null;
        });
        if (entry.getValue().isEmpty()) {
          waiting.remove(instance);
          out.printf(Locale.ROOT, "%s serving after %.1f s%n", instance,
              (System.nanoTime() - start) / 1e9);
          out.flush();
        }
      }
      if (waiting.isEmpty()) {
        return;
      }
      if (System.nanoTime() > deadline) {
        Topology.Instance instance = waiting.keySet().iterator().next();
        Topology.Endpoint endpoint = waiting.get(instance).get(0);
        throw failure(instance, "not serving after " + timeout.toSeconds() + " s: "
            + instance.name() + (endpoint.rank() >= 0 ? " rank " + endpoint.rank() : "")
            + " (/health: " + last.get(endpoint) + ")");
      }
      Thread.sleep(POLL_MILLIS);
    }
  }

  private LaunchFailure failure(Topology.Instance instance, String reason) {
    return new LaunchFailure(reason + "; last lines of " + run.console(instance.name()) + ":\n"
        + LogTail.of(run.console(instance.name()), TAIL_LINES));
  }
}
