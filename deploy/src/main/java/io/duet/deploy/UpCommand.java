package io.duet.deploy;

import io.duet.cluster.InvalidConfigException;
import io.duet.cluster.Settings;
import io.duet.cluster.Topology;
import io.duet.contract.Role;
import io.duet.deploy.impl.InstanceLauncher;
import io.duet.deploy.impl.LaunchFailure;
import io.duet.deploy.impl.LaunchRecord;
import io.duet.deploy.impl.LocalHosts;
import io.duet.deploy.impl.ModelCheck;
import io.duet.deploy.impl.Readiness;
import io.duet.deploy.impl.RunDirectory;
import io.duet.deploy.impl.ServiceJars;
import io.duet.deploy.impl.Stopper;
import io.duet.service.ServiceRuntime;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code duet.jar up FILE}: one JVM per instance of the topology, started on this machine from
 * the services' jars and recorded in the run directory; returns once every instance and every
 * decode rank serves, leaving them running. When that does not happen (a process exits, the
 * timeout passes, Ctrl-C), it stops what it started.
 */
@Command(name = "up", mixinStandardHelpOptions = true,
    description = "Starts one JVM per instance of a topology file on this machine, waits until "
        + "every instance and decode rank serves (GET /health), prints where the proxy listens "
        + "and returns; the JVMs keep running (stop them with down). The model comes from "
        + "MODEL_PATH / TOKENIZER_PATH or the file (none for instances of engine: sim).")
final class UpCommand implements Callable<Integer> {

  /** Long enough for a service to leave the cluster on SIGTERM. */
  private static final Duration STOP_GRACE = Duration.ofSeconds(30);

  @Mixin
  RunOptions options;

  @Option(names = "--jars", paramLabel = "DIR",
      description = "Where the service jars are: a directory of them, or the repository "
          + "(default: near duet.jar).")
  Path jars;

  @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "180",
      description = "How long every instance has to serve (default: ${DEFAULT-VALUE}).")
  int timeoutSeconds;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = options.out();
    Topology topology = options.topology();
    ModelCheck.Result models = ModelCheck.run(topology);
    if (!models.problems().isEmpty()) {
      throw new InvalidConfigException(models.problems());
    }
    RunDirectory run = options.directory(topology);
    requireStartable(topology, run);
    Map<Role, Path> serviceJars = ServiceJars.find(jars);
    Files.createDirectories(run.dir());

    String cluster = topology.shared().get(Settings.CLUSTER_NAME);
    AtomicReference<LaunchRecord> record =
        new AtomicReference<>(new LaunchRecord(cluster, topology.file(), List.of()));
    Thread stopOnSignal = new Thread(() -> stop(record.get(), out), "duet-up-stop");
    Runtime.getRuntime().addShutdownHook(stopOnSignal);
    boolean serving = false;
    try {
      InstanceLauncher launcher = new InstanceLauncher(topology.file(), run, serviceJars);
      Map<String, Process> processes = new LinkedHashMap<>();
      for (Topology.Instance instance : topology.instances()) {
        InstanceLauncher.Launched launched = launcher.start(instance);
        processes.put(instance.name(), launched.process());
        record.set(record.get().with(launched.record()));
        record.get().write(run.record());
        out.println("started " + instance + ", pid " + launched.process().pid());
        out.flush();
      }
      new Readiness(run, out).await(topology.instances(), processes,
          Duration.ofSeconds(timeoutSeconds));
      serving = true;
    } finally {
      if (!serving && removed(stopOnSignal)) {
        out.println("up failed: stopping what it started");
        stop(record.get(), out);
      }
    }
    removed(stopOnSignal);
    for (Topology.Instance proxy : topology.instances()) {
      if (proxy.role() == Role.PROXY) {
        Topology.Endpoint http = proxy.healthEndpoints().get(0);
        out.println(cluster + " is up: proxy " + proxy.name() + " listens on http://"
            + http.host() + ":" + http.port() + "/v1");
      }
    }
    out.println("logs and pids in " + run.dir() + "; stop with: java -jar duet.jar down "
        + options.file);
    out.flush();
    return 0;
  }

  /**
   * Refuses, naming every reason, a topology that cannot be started here: an instance on a
   * host of another machine, no model for a prefill or decode instance, a run of it that still
   * runs, or a port of it in use.
   */
  private static void requireStartable(Topology topology, RunDirectory run) {
    List<String> reasons = new ArrayList<>();
    for (Topology.Instance instance : topology.instances()) {
      if (!LocalHosts.isLocal(instance.host())) {
        reasons.add(instance.name() + "'s host " + instance.host() + " is not this machine's: "
            + "up starts every instance here");
      }
      Optional<Path> model = instance.config().get(Settings.MODEL_PATH);
      // a file (llama2.c) or a directory (a Hugging Face checkpoint); the simulated engine
      // needs none
      if (instance.role() != Role.PROXY && !ServiceRuntime.simulated(instance.config())
          && (model.isEmpty() || !Files.exists(model.get()))) {
        reasons.add(instance.name() + " has no model: " + model.map(path -> path
            + " does not exist").orElse("set MODEL_PATH and TOKENIZER_PATH, or model.path and "
            + "model.tokenizer in the file"));
      }
    }
    LaunchRecord.read(run.record()).map(LaunchRecord::running).filter(list -> !list.isEmpty())
        .ifPresent(running -> reasons.add("a run of it still runs (" + running.stream()
            .map(process -> process.instance() + " pid " + process.pid()).toList() + "): stop "
            + "it with down first"));
    if (reasons.isEmpty()) {
      topology.instances().forEach(instance -> instance.ports().stream()
          .filter(endpoint -> !isFree(endpoint))
          .forEach(endpoint -> reasons.add(instance.name() + "'s " + endpoint.setting().key()
              + (endpoint.rank() >= 0 ? " (rank " + endpoint.rank() + ")" : "") + " "
              + endpoint.host() + ":" + endpoint.port() + " is in use")));
    }
    if (!reasons.isEmpty()) {
      throw new LaunchFailure("cannot start " + topology.file() + ":\n  "
          + String.join("\n  ", reasons));
    }
  }

  private static boolean isFree(Topology.Endpoint endpoint) {
    try (ServerSocket socket = new ServerSocket(endpoint.port(), 1,
        InetAddress.getByName(endpoint.host()))) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** Removes the hook; false when the JVM is shutting down, and the hook runs. */
  private static boolean removed(Thread hook) {
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
      return true;
    } catch (IllegalStateException shuttingDown) {
      return false;
    }
  }

  private static void stop(LaunchRecord record, PrintWriter out) {
    try {
      new Stopper(out).stop(record, STOP_GRACE);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (LaunchFailure e) {
      out.println(e.getMessage());
    }
    out.flush();
  }
}
