package io.duet.service;

import io.duet.cluster.ClusterBootstrap;
import io.duet.cluster.ConfigFlags;
import io.duet.cluster.ConfigLoader;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.InvalidConfigException;
import io.duet.cluster.Logging;
import io.duet.cluster.Settings;
import io.duet.contract.Role;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.launch.VectorLauncher;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
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
    Logging.configure(config);
    LOG.info("{} starting with configuration (lowest to highest precedence: default < file < "
        + "env < flag):\n{}", config.get(Settings.INSTANCE_ID), config.describe());
    Vertx vertx = await(ClusterBootstrap.start(config));
    ClusterBootstrap.closeOnSignal(vertx, config);
    return new Member(vertx, config);
  }

  /** Makes the worker verticle of a role for an engine. */
  @FunctionalInterface
  public interface WorkerFactory {
    WorkerVerticle create(DuetConfig config, Engine engine, String modelName);
  }

  /**
   * The whole life of a prefill or decode main: configuration, the engine on the configured
   * model, the cluster, the worker verticle and its heartbeat.
   */
  public static void runWorker(Role role, ConfigFlags flags, WorkerFactory factory)
      throws Exception {
    DuetConfig config = loadConfig(role, flags);
    Path model = requireModel(config);
    Engine engine = openEngine(config, role, model,
        config.get(Settings.MODEL_TOKENIZER).orElse(null));
    deployWorker(join(config), factory.create(config, engine,
        config.get(Settings.MODEL_SERVED_NAME).orElseThrow()));
  }

  /** Deploys a worker on a member; it heartbeats until it is undeployed. */
  public static <W extends WorkerVerticle> W deployWorker(Member member, W worker) throws Exception {
    await(member.vertx().deployVerticle(worker.heartbeatWith(member.config())));
    return worker;
  }

  /** Opens a model with the KV cache size and threads configured for {@code role}. */
  public static Engine openEngine(DuetConfig config, Role role, Path model, Path tokenizer)
      throws IOException {
    return openEngine(config, role, model, tokenizer, false);
  }

  /**
   * As {@link #openEngine(DuetConfig, Role, Path, Path)}; {@code sharedCores} when another
   * engine of this JVM computes on the same cores (the embedded 1P1D).
   */
  public static Engine openEngine(DuetConfig config, Role role, Path model, Path tokenizer,
      boolean sharedCores) throws IOException {
    boolean prefill = role == Role.PREFILL;
    EngineOptions options = new EngineOptions().modelPath(model)
        .architecture(config.get(Settings.MODEL_ARCHITECTURE).orElse(null))
        .tokenizerPath(tokenizer)
        .kvCacheBytes((long) config.get(prefill ? Settings.PREFILL_KV_CACHE_MB
            : Settings.DECODE_KV_CACHE_MB) << 20)
        .threads(config.get(prefill ? Settings.PREFILL_THREADS : Settings.DECODE_THREADS))
        .weightStorage(config.get(Settings.MODEL_WEIGHTS))
        .sharedCores(sharedCores);
    Engine engine = Engine.open(options);
    // Hash the weights for the KV layout fingerprint now, not on an event loop later, and let
    // the JIT compile the forward pass before the first request.
    LOG.info("{} engine: KV layout {}, warmed up in {} ms", role.wireName(),
        engine.layout().fingerprint(), engine.warmUp(WARM_UP_STEPS, WARM_UP_BUDGET_MILLIS));
    return engine;
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
