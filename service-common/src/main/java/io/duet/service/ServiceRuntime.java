package io.duet.service;

import io.duet.cluster.ClusterBootstrap;
import io.duet.cluster.ConfigFlags;
import io.duet.cluster.ConfigLoader;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.ExpertParallelNodes;
import io.duet.cluster.InvalidConfigException;
import io.duet.cluster.Logging;
import io.duet.cluster.ModelChecks;
import io.duet.cluster.Settings;
import io.duet.contract.Role;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.ExpertNetwork;
import io.duet.engine.launch.VectorLauncher;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;

/**
 * The start-up every service main shares: configuration (defaults, file, environment, flags),
 * logging, the configuration printed with secrets masked, the clustered Vert.x, and a clean
 * leave on SIGTERM. Blocking: for main threads only.
 */
public final class ServiceRuntime {

  private static final Logger LOG = LoggerFactory.getLogger(ServiceRuntime.class);
  private static final long START_TIMEOUT_SECONDS = 120;
  /** Enough for the JIT to compile the whole forward pass (see {@link Engine#warmUp(int)}). */
  private static final int WARM_UP_STEPS = 1024;
  /** ... unless the model is so large that this takes longer than a start should wait. */
  private static final long WARM_UP_BUDGET_MILLIS = 3000;
  /** What the ranks of an expert-parallel group run, all of them, with no time limit. */
  private static final int GROUP_WARM_UP_STEPS = 64;

  /** A started member: its clustered Vert.x and its configuration. */
  public record Member(Vertx vertx, DuetConfig config) {
  }

  /**
   * What Hazelcast asks of the JVM to run without reflection warnings; the service mains hand
   * them to the launcher, the one place that adds JVM flags.
   */
  public static final List<String> JVM_FLAGS = List.of("--add-modules", "java.se",
      "--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
      "--add-opens", "java.base/java.lang=ALL-UNNAMED",
      "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
      "--add-opens", "java.management/sun.management=ALL-UNNAMED",
      "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED");

  private ServiceRuntime() {
  }

  /**
   * The JVM options to start a service jar with directly, as a launcher of many does: what the
   * relaunch would add ({@link VectorLauncher#jvmFlags}), so each service is one process.
   */
  public static List<String> directLaunchFlags() {
    return VectorLauncher.jvmFlags(JVM_FLAGS);
  }

  /** For service mains: relaunches with the Vector API and {@link #JVM_FLAGS} if needed. */
  public static void relaunchIfNeeded(Class<?> mainClass, String[] args) {
    VectorLauncher.ensureVectorApi(mainClass, args, JVM_FLAGS);
  }

  /**
   * The body of a service's {@code main}: {@link #relaunchIfNeeded} (the command's class is the
   * main class), then the picocli command. A command that fails ends the process with its exit
   * code; one that succeeds has started a service whose threads keep the process alive, so
   * this returns. An invalid configuration is reported as its list of problems, without a stack
   * trace. For service mains only: it may end the process.
   */
  public static void runMain(Callable<Integer> command, String[] args) {
    relaunchIfNeeded(command.getClass(), args);
    int exit = new CommandLine(command).setExecutionExceptionHandler((error, line, parsed) -> {
      if (!(error instanceof InvalidConfigException)) {
        throw error;
      }
      line.getErr().println(error.getMessage());
      return line.getCommandSpec().exitCodeOnExecutionException();
    }).execute(args);
    if (exit != 0) {
      System.exit(exit);
    }
  }

  public static DuetConfig loadConfig(Role role, ConfigFlags flags) throws Exception {
    Vertx loader = Vertx.vertx();
    try {
      return await(ConfigLoader.load(loader, role, flags, System.getenv()));
    } finally {
      await(loader.close());
    }
  }

  /** Configures logging, prints the configuration and joins the cluster. */
  public static Member join(DuetConfig config) throws Exception {
    return await(startJoining(config));
  }

  /**
   * Configures logging, prints the configuration and starts joining the cluster; the member,
   * once joined, leaves cleanly on SIGTERM ({@link ClusterBootstrap#closeOnSignal}).
   */
  private static Future<Member> startJoining(DuetConfig config) {
    Logging.configure(config);
    LOG.info("{} starting with configuration (lowest to highest precedence: default < file < "
        + "env < flag):\n{}", config.get(Settings.INSTANCE_ID), config.describe());
    return ClusterBootstrap.start(config).map(vertx -> {
      ClusterBootstrap.closeOnSignal(vertx, config);
      return new Member(vertx, config);
    });
  }

  /** Makes the worker verticle of one rank of an instance, for that rank's engine. */
  @FunctionalInterface
  public interface WorkerFactory {
    /** @param rank the worker's data-parallel rank, from 0 to {@link ServiceRuntime#ranks} - 1 */
    WorkerVerticle create(DuetConfig config, Engine engine, String modelName, int rank);
  }

  /**
   * The whole life of a prefill or decode main: configuration, the engines of the instance's
   * ranks over the configured model, the cluster, and a worker verticle per rank with its
   * heartbeat. SIGTERM closes Vert.x, which undeploys every rank. The cluster join (round trips
   * to the members) runs while the model loads and warms up (computation), so that a restarted
   * instance serves again sooner; until its workers announce themselves no proxy routes to it.
   */
  public static void runWorker(Role role, ConfigFlags flags, WorkerFactory factory)
      throws Exception {
    DuetConfig config = loadConfig(role, flags);
    Path model = simulated(config) ? null : requireModel(config);
    Future<Member> joining = startJoining(config);
    List<Engine> engines;
    try {
      engines = openEngines(config, role, model,
          config.get(Settings.MODEL_TOKENIZER).orElse(null), false);
      if (role == Role.DECODE) {
        // what a topology file cannot know without the model: decode.ep against its experts
        ModelChecks.require(config, engines.get(0).info());
      }
    } catch (Exception | Error e) {
      joining.onSuccess(member -> member.vertx().close());
      throw e;
    }
    deployWorkers(await(joining), engines, factory,
        config.get(Settings.MODEL_SERVED_NAME).orElseThrow());
  }

  /** Deploys a worker on a member; it heartbeats until it is undeployed. */
  public static <W extends WorkerVerticle> W deployWorker(Member member, W worker) throws Exception {
    await(member.vertx().deployVerticle(worker.heartbeatWith(member.config())));
    return worker;
  }

  /**
   * Deploys the workers of an instance on a member, rank {@code r} on {@code engines.get(r)};
   * each heartbeats (announcing its own registry entry) until it is undeployed.
   *
   * @return the workers, by rank
   */
  public static List<WorkerVerticle> deployWorkers(Member member, List<Engine> engines,
      WorkerFactory factory, String modelName) throws Exception {
    List<WorkerVerticle> workers = new ArrayList<>();
    for (int rank = 0; rank < engines.size(); rank++) {
      workers.add(deployWorker(member, factory.create(member.config(), engines.get(rank),
          modelName, rank)));
    }
    return workers;
  }

  /** The data-parallel ranks of an instance of {@code role}: {@code decode.dp}, else 1. */
  public static int ranks(DuetConfig config, Role role) {
    return role == Role.DECODE ? config.get(Settings.DECODE_DP) : 1;
  }

  /**
   * Opens a model for the {@link #ranks} of an instance of {@code role}: one engine per rank over
   * one load of the weights, each with the KV cache size configured for the role and
   * {@link #threadsPerRank} compute threads. {@code sharedCores} when another engine of this JVM
   * computes on the same cores (the embedded 1P1D).
   */
  public static List<Engine> openEngines(DuetConfig config, Role role, Path model,
      Path tokenizer, boolean sharedCores) throws IOException {
    boolean prefill = role == Role.PREFILL;
    boolean simulated = simulated(config);
    int ranks = ranks(config, role);
    int cores = Runtime.getRuntime().availableProcessors();
    // the simulated engine computes nothing on the pool: one thread, the engine thread itself
    int threads = simulated ? 1 : threadsPerRank(config.get(prefill ? Settings.PREFILL_THREADS
        : Settings.DECODE_THREADS), ranks, cores);
    EngineOptions options = modelOptions(config, role, model, tokenizer)
        .kvCacheBytes((long) config.get(prefill ? Settings.PREFILL_KV_CACHE_MB
            : Settings.DECODE_KV_CACHE_MB) << 20)
        .threads(threads)
        .weightStorage(config.get(Settings.MODEL_WEIGHTS))
        .weightFormat(config.get(Settings.MODEL_WEIGHT_FORMAT))
        .warmCache(config.get(Settings.MODEL_WARM_CACHE).orElse(null))
        .sharedCores(sharedCores || threads * ranks > cores);
    if (!prefill) {
      options.expertParallel(config.get(Settings.DECODE_EP))
          .expertSlots(config.get(Settings.DECODE_EXPERT_SLOTS))
          .expertNetwork(expertNetwork(config));
    }
    List<Engine> engines = Engine.openRanks(options, ranks);
    if (simulated) {
      LOG.warn("{} runs the SIMULATED engine (engine: sim): its text is lorem-ipsum pseudo-text "
          + "and its speed a timing model's, not a model's: {}", config.get(Settings.INSTANCE_ID),
          engines.get(0).description().model());
    }
    // Hash the weights for the KV layout fingerprint now, not on an event loop later, and let
    // the JIT compile the forward pass before the first request. The ranks share the weights
    // (and their hash) and the JVM's compiled code, so warming one warms them all. The
    // simulated engine has no kernels to compile: only the prefill path is walked once.
    Engine first = engines.get(0);
    LOG.info("{} engine{}: KV layout {}, warmed up in {} ms", role.wireName(),
        ranks == 1 ? "" : "s of " + ranks + " ranks, " + threads + " threads each",
        first.layout().fingerprint(), warmUp(engines, simulated));
    return engines;
  }

  /**
   * Where this decode node's ranks meet the other nodes' when its expert-parallel groups span
   * JVMs ({@code decode.ep-nodes}): listening on its own item's host, authenticated with
   * {@code cluster.secret} when set; null when every rank is in this JVM.
   */
  static ExpertNetwork expertNetwork(DuetConfig config) {
    List<InetSocketAddress> ranks = ExpertParallelNodes.rankAddresses(config);
    if (ranks.isEmpty()) {
      return null;
    }
    return ExpertNetwork.of(ranks, ExpertParallelNodes.firstRank(config),
        ExpertParallelNodes.ownNode(config).getHostString(),
        config.get(Settings.CLUSTER_SECRET).orElse(null));
  }

  /** Whether the configuration selects the simulated engine ({@code engine: sim}). */
  public static boolean simulated(DuetConfig config) {
    return config.get(Settings.ENGINE).equals(Settings.ENGINE_SIM);
  }

  /**
   * The engine options that choose what an instance of {@code role} runs: the simulated engine
   * with its parameters ({@code sim.profile}, the instance's prefill.tp as its accelerators and
   * decode.num-speculative-tokens as its speculative tokens, then {@code sim.parameters}), else
   * {@code model} with its tokenizer and {@code model.architecture}, drafting with the model's
   * MTP module when decode.num-speculative-tokens is 1, in prefill instances too: their KV
   * carries the module's layer, and the KV layout fingerprint refuses a mix.
   *
   * @throws IllegalArgumentException for more than 1 speculative token with a real model
   */
  public static EngineOptions modelOptions(DuetConfig config, Role role, Path model,
      Path tokenizer) {
    if (!simulated(config)) {
      int speculative = config.get(Settings.DECODE_NUM_SPECULATIVE_TOKENS);
      if (speculative > 1) {
        throw new IllegalArgumentException("decode.num-speculative-tokens " + speculative
            + ": the engine drafts at most 1 token a step (DeepSeek-V3's MTP module)");
      }
      return new EngineOptions().modelPath(model)
          .architecture(config.get(Settings.MODEL_ARCHITECTURE).orElse(null))
          .tokenizerPath(tokenizer).mtp(speculative == 1);
    }
    Map<String, String> parameters = new HashMap<>();
    if (role == Role.PREFILL) {
      parameters.put("accelerators", String.valueOf(config.get(Settings.PREFILL_TP)));
    } else if (role == Role.DECODE) {
      parameters.put("speculative-tokens",
          String.valueOf(config.get(Settings.DECODE_NUM_SPECULATIVE_TOKENS)));
    }
    parameters.putAll(config.get(Settings.SIM_PARAMETERS));
    return new EngineOptions().architecture(Settings.ENGINE_SIM)
        .modelPath(config.get(Settings.SIM_PROFILE).orElse(null)).parameters(parameters);
  }

  /**
   * Warms the engines up: the first alone, or, when they share experts (expert parallelism),
   * every engine of this JVM's part of the first group at once, on a thread each, since they
   * step together. A group spanning JVMs holds every rank of each of its JVMs, so the other
   * nodes of the group warm theirs in the same steps. The simulated engine's steps take
   * simulated time and compile nothing worth warming.
   *
   * @return how long it took, in milliseconds
   */
  private static long warmUp(List<Engine> engines, boolean simulated) {
    int group = engines.get(0).expertParallelRanks();
    if (simulated) {
      return engines.get(0).warmUp(0, WARM_UP_BUDGET_MILLIS);
    }
    if (group == 1) {
      return engines.get(0).warmUp(WARM_UP_STEPS, WARM_UP_BUDGET_MILLIS);
    }
    long start = System.nanoTime();
    // The budget does not apply to a group (its ranks must run the same steps): fewer steps.
    List<CompletableFuture<Long>> warming = engines.subList(0, Math.min(group, engines.size()))
        .stream()
        .map(e -> CompletableFuture.supplyAsync(() -> e.warmUp(GROUP_WARM_UP_STEPS),
            runnable -> new Thread(runnable, "duet-warm-up").start()))
        .toList();
    warming.forEach(CompletableFuture::join);
    return (System.nanoTime() - start) / 1_000_000;
  }

  /**
   * Compute threads of each of {@code ranks} engines in one JVM: {@code configured}, or when it
   * is 0 the cores divided evenly among the ranks, rounded down and at least one. Evenly, so that
   * the ranks decode at the same speed and least-load balancing over them stays fair; a core the
   * division leaves over serves the event loops and KV transfers.
   */
  static int threadsPerRank(int configured, int ranks, int cores) {
    return configured > 0 ? configured : Math.max(1, cores / ranks);
  }

  /** The configured model path, or a clear error. */
  public static Path requireModel(DuetConfig config) {
    return config.get(Settings.MODEL_PATH).orElseThrow(() -> new IllegalArgumentException(
        "no model configured: pass --model PATH (and --tokenizer PATH), set MODEL_PATH, or set "
            + "model.path in the --config file"));
  }

  public static <T> T await(Future<T> future) throws Exception {
    try {
      return future.toCompletionStage().toCompletableFuture()
          .get(START_TIMEOUT_SECONDS, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof Exception cause) {
        throw cause;
      }
      throw e;
    } catch (TimeoutException e) {
      throw new IllegalStateException("start-up step did not finish within "
          + START_TIMEOUT_SECONDS + " s", e);
    }
  }
}
