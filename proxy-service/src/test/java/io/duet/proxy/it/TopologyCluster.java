package io.duet.proxy.it;

import io.duet.service.StatusPages;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * A cluster of packaged JVMs as an operator runs it: a topology file the test writes, one
 * section per instance on loopback with ports of its own, and one process per instance started
 * with {@code --config FILE --instance NAME}. The file names no members, so that every instance
 * is given every instance's cluster address, as a topology file does. An instance's role is the
 * first letter of its name: {@code c} proxy, {@code p} prefill, {@code d} decode (one rank).
 */
final class TopologyCluster {

  /**
   * An instance of the topology: its name, role, and the port a test reads it on (a proxy's
   * API port, a prefill or decode instance's status port). Its current JVM changes when it is
   * restarted.
   */
  static final class Instance {
    private final String name;
    private final String role;
    private final int port;
    private volatile ChildJvms.Child child;

    private Instance(String name, String role, int port) {
      this.name = name;
      this.role = role;
      this.port = port;
    }

    String name() {
      return name;
    }

    String role() {
      return role;
    }

    int port() {
      return port;
    }

    boolean isProxy() {
      return role.equals("proxy");
    }

    /** Its JVM now; null before its first start. */
    ChildJvms.Child child() {
      return child;
    }
  }

  private static final Pattern PREFILLED = StatusPages.PREFILL_PROMPTS;
  private static final Pattern DECODED = StatusPages.DECODE_TOKENS;

  private final ChildJvms jvms;
  private final StatusPages pages = new StatusPages();
  private final Path repo;
  private final String modelName;
  private final List<String> modelArgs;
  private final Path file;
  private final Map<String, Instance> instances = new LinkedHashMap<>();

  /**
   * Writes the topology of {@code names} to {@code work}: a cluster of its own (a random name),
   * {@code modelName} served, small engines, and {@code settings} (YAML lines at the top level).
   *
   * @param modelArgs the flags that name the model and tokenizer, given to every process
   */
  TopologyCluster(ChildJvms jvms, Path work, List<String> names, String modelName,
      List<String> modelArgs, String settings) throws Exception {
    this.jvms = jvms;
    this.repo = ItPaths.repoDir();
    this.modelName = modelName;
    this.modelArgs = List.copyOf(modelArgs);
    Set<Integer> taken = new HashSet<>();
    StringBuilder sections = new StringBuilder();
    for (String name : names) {
      String role = switch (name.charAt(0)) {
        case 'c' -> "proxy";
        case 'p' -> "prefill";
        case 'd' -> "decode";
        default -> throw new IllegalArgumentException("no role for instance name " + name);
      };
      int clusterPort = ItPaths.freePortRange(1, taken);
      int port = ItPaths.freePortRange(1, taken);
      String ports = switch (role) {
        case "proxy" -> "proxy: {port: " + port + "}";
        case "prefill" -> "prefill: {http-port: " + port + ", kv-port: "
            + ItPaths.freePortRange(1, taken) + "}";
        default -> "decode: {http-port: " + port + "}";
      };
      sections.append("  ").append(name).append(": {role: ").append(role)
          .append(", host: 127.0.0.1, cluster-port: ").append(clusterPort).append(", ")
          .append(ports).append("}\n");
      instances.put(name, new Instance(name, role, port));
    }
    String cluster = "duet-it-" + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 16);
    file = work.resolve(cluster + ".yaml");
    Files.writeString(file, """
        # Written by an integration test: a cluster of its own on loopback, small engines.
        cluster:
          name: %s
        model:
          served-name: %s
        prefill:
          kv-cache-mb: 32
          threads: 1
        decode:
          kv-cache-mb: 32
          threads: 1
        %s
        instances:
        %s""".formatted(cluster, modelName, settings, sections));
  }

  Instance get(String name) {
    Instance instance = instances.get(name);
    if (instance == null) {
      throw new IllegalArgumentException("no instance " + name + " in " + file);
    }
    return instance;
  }

  List<Instance> instances() {
    return List.copyOf(instances.values());
  }

  /** Starts (or starts again) the JVM of {@code name}; its log is {@code name-N.log}. */
  Instance start(String name) throws IOException {
    Instance instance = get(name);
    long previous = jvms.children().stream()
        .filter(child -> child.name().startsWith(name + "-")).count();
    List<String> args = new ArrayList<>(List.of("--config", file.toString(),
        "--instance", name));
    args.addAll(modelArgs);
    instance.child = jvms.startService(name + "-" + (previous + 1),
        ItPaths.jar(repo, instance.role() + "-service"), args);
    return instance;
  }

  /**
   * Starts every instance in the order of the file, each once the one before is up (members
   * that join at once take Hazelcast minutes to agree on a busy machine), and waits until every
   * proxy serves the model.
   */
  void startOneByOne(Duration timeout) throws IOException {
    for (Instance instance : instances.values()) {
      awaitUp(start(instance.name()), timeout);
    }
    for (Instance proxy : instances.values()) {
      if (proxy.isProxy()) {
        Waits.until(proxy.name() + " to serve " + modelName, () -> {
          jvms.assertAllAlive("during start-up");
          return servesTheModel(proxy);
        }, timeout);
      }
    }
  }

  /**
   * Stops {@code instance} with SIGTERM, waits for its drained exit, starts it again and waits
   * until it serves: a proxy lists the model, a prefill or decode instance has done work for a
   * client. Both durations go to {@code figures}.
   */
  void restart(Instance instance, Duration exitTimeout, Duration readyTimeout, Figures figures)
      throws Exception {
    String name = instance.name();
    long stopped = System.nanoTime();
    ChildJvms.terminate(instance.child());
    instance.child().process().onExit().get(exitTimeout.toSeconds(), TimeUnit.SECONDS);
    figures.millisSince(name + " drained and exited %d ms after SIGTERM", stopped);
    long launched = System.nanoTime();
    start(name);
    Waits.until(name + " to serve again", () -> {
      instance.child().assertAlive("after its restart");
      if (instance.isProxy()) {
        return servesTheModel(instance);
      }
      return pages.tryGet(instance.port(), "/metrics").isPresent() && pages.metric(
          instance.port(), instance.role().equals("prefill") ? PREFILLED : DECODED) > 0;
    }, readyTimeout);
    figures.millisSince(name + " restarted: served again %d ms after its launch", launched);
  }

  /** Waits until no prefill or decode instance holds a KV block, nor a prefill one a lease. */
  void awaitNoKvHeld(Duration timeout) {
    for (Instance instance : instances.values()) {
      if (!instance.isProxy()) {
        Waits.until(instance.name() + " to hold no KV block and no lease",
            () -> pages.metric(instance.port(), StatusPages.KV_BLOCKS_USED) == 0
                && (!instance.role().equals("prefill")
                    || pages.metric(instance.port(), StatusPages.KV_LEASES) == 0), timeout);
      }
    }
  }

  private boolean servesTheModel(Instance proxy) {
    return pages.servedModels(proxy.port()).map(models -> models.contains(modelName))
        .orElse(false);
  }

  /**
   * Waits until the JVM of {@code instance} is up: a proxy answers on its port, a prefill or
   * decode instance on its status endpoint (which it opens once it has joined the cluster).
   * Returns when it was ({@link System#nanoTime}).
   */
  long awaitUp(Instance instance, Duration timeout) {
    return Waits.until(instance.name() + " to be up", () -> {
      instance.child().assertAlive("during start-up");
      return pages.tryGet(instance.port(), instance.isProxy() ? "/v1/models" : "/health")
          .map(answer -> answer.statusCode() == 200).orElse(false);
    }, timeout);
  }
}
