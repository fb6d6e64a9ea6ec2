package io.duet.proxy;

import io.duet.cluster.ConfigFlags;
import io.duet.cluster.ConfigLoader;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Heartbeat;
import io.duet.cluster.Metrics;
import io.duet.cluster.Registry;
import io.duet.cluster.Settings;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.decode.DecodeMain;
import io.duet.prefill.PrefillMain;
import io.duet.proxy.cluster.ClusterBackend;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingOptions;
import io.duet.service.ServiceRuntime;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code java -jar proxy-service.jar}: the OpenAI-compatible front end. By default it also runs
 * one prefill and one decode instance in its own JVM (a single-member cluster), so that one
 * command gives a working PD-disaggregated server; {@code --no-embedded} (or
 * {@code proxy.embedded: false}) runs the proxy alone in front of separately started services.
 */
@Command(name = "proxy-service", mixinStandardHelpOptions = true,
    description = "OpenAI-compatible HTTP front end of a Duet cluster. Without arguments: a whole "
        + "1P1D on port 7000 in this JVM.")
public final class ProxyMain implements Callable<Integer> {

  private static final Logger LOG = LoggerFactory.getLogger(ProxyMain.class);
  private static final long READY_TIMEOUT_MILLIS = 30_000;
  /** How often the configuration file is checked for a change to reload. */
  private static final long CONFIG_WATCH_MILLIS = 1000;

  @Mixin
  ConfigFlags flags;

  public static void main(String[] args) {
    ServiceRuntime.runMain(new ProxyMain(), args);
  }

  @Override
  public Integer call() throws Exception {
    String ownName = "duet-embedded-" + UUID.randomUUID();
    DuetConfig config = ownCluster(ServiceRuntime.loadConfig(Role.PROXY, flags), ownName);
    boolean withWorkers = config.get(Settings.PROXY_EMBEDDED);
    String id = config.get(Settings.INSTANCE_ID);
    PrometheusMeterRegistry metrics = Metrics.createRegistry(Role.PROXY.wireName(), id);
    // Before joining the cluster, so that a misnamed policy fails the start at once.
    Routing routing = routing(config, metrics);
    ServiceRuntime.Member member = ServiceRuntime.join(config);
    Vertx vertx = member.vertx();
    Registry registry = Registry.create(vertx, config);
    // A decode rank that joins takes waiting requests at once, not at the next slot given back.
    registry.onChange(change -> {
      if (change.kind() == Registry.ChangeKind.ADDED && change.instance().role() == Role.DECODE) {
        routing.dispatchWaiting(registry.instances());
      } else if (change.kind() == Registry.ChangeKind.REMOVED) {
        routing.instanceLeft(change.instance());
      }
    });
    ServiceRuntime.await(registry.ready());
    String servedModel = withWorkers ? startWorkers(member)
        : config.get(Settings.MODEL_SERVED_NAME).orElse(null);
    // Before listening: a proxy restarted in a running cluster must not answer 404 to its first
    // clients only because it has not heard the instances' heartbeats yet (on a busy machine
    // that takes seconds). Without a model named, one heartbeat timeout is what it waits.
    long servedLimitMillis = servedModel != null ? READY_TIMEOUT_MILLIS
        : config.get(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS);
    boolean served = ServiceRuntime.await(servedWithin(vertx, registry, servedModel,
        servedLimitMillis));
    if (withWorkers && !served) {
      throw new IllegalStateException("the embedded prefill and decode instances did not "
          + "register within " + READY_TIMEOUT_MILLIS + " ms");
    }

    Map<String, String> env = System.getenv();
    ConfigReload reload = reload(vertx, () -> ConfigLoader.load(vertx, flags, env)
        .map(loaded -> ownCluster(loaded, ownName)), config, routing, registry::instances,
        metrics);
    configFile(flags, env).ifPresent(file -> reload.watch(file, CONFIG_WATCH_MILLIS));
    String host = config.get(Settings.PROXY_HOST);
    ProxyVerticle proxy = proxy(vertx, config, registry::instances, routing, metrics, reload);
    ServiceRuntime.await(vertx.deployVerticle(proxy));
    Heartbeat heartbeat = Heartbeat.start(vertx, config, () -> new InstanceInfo(id, Role.PROXY,
        0, 1, host, proxy.actualPort(), 0, "", "", "", 0, new InstanceInfo.Load(0, 0, 0, 0, 0),
        System.currentTimeMillis()).withState(proxy.state()));
    proxy.onStateChange(state -> {
      if (state == InstanceInfo.State.LEFT) {
        // The proxy routes no more: its registry closes before its last heartbeat goes out, so
        // that the heartbeat finds no consumer here, rather than one that Vert.x's close
        // unregisters while the heartbeat is on its way to it (which Vert.x warns of).
        registry.close().onComplete(closed -> heartbeat.leave());
      } else {
        heartbeat.beatNow();
      }
    });
    LOG.info("Duet proxy {} ready on http://{}:{}/v1 serving {}{}", id, host,
        proxy.actualPort(), servedModel != null ? servedModel
            : "the models of the cluster's prefill and decode instances",
        served ? "" : " (none is served yet)");
    return 0;
  }

  /**
   * The configuration an embedded 1P1D runs with: unless a cluster name is given, {@code name},
   * unique to this process, so that it joins no other cluster and no other member joins it.
   * With the shared default two embedded proxies on one machine would form one cluster and route
   * requests to each other's instances.
   */
  static DuetConfig ownCluster(DuetConfig config, String name) {
    if (!config.get(Settings.PROXY_EMBEDDED)
        || !DuetConfig.SOURCE_DEFAULT.equals(config.source(Settings.CLUSTER_NAME.key()))) {
      return config;
    }
    return config.with(Settings.CLUSTER_NAME, name);
  }

  /**
   * The routing policies the configuration names ({@code proxy.prefill-policy},
   * {@code proxy.decode-policy} and their parameters), counting their decisions in
   * {@code metrics}.
   *
   * @throws IllegalArgumentException for an unknown policy (the message lists the known ones) or
   *     parameters a policy does not take
   */
  public static Routing routing(DuetConfig config, MeterRegistry metrics) {
    return Routing.create(routingOptions(config), metrics);
  }

  /**
   * The routing the configuration names: the policies, their parameters, the cap per decode
   * target ({@code proxy.decode-rank-cap}) and the queue bound ({@code proxy.queue-size}).
   */
  static RoutingOptions routingOptions(DuetConfig config) {
    return new RoutingOptions()
        .setPrefillPolicy(config.get(Settings.PROXY_PREFILL_POLICY))
        .setPrefillPolicyParams(params(config.get(Settings.PROXY_PREFILL_POLICY_PARAMS)))
        .setDecodePolicy(config.get(Settings.PROXY_DECODE_POLICY))
        .setDecodePolicyParams(params(config.get(Settings.PROXY_DECODE_POLICY_PARAMS)))
        .setDecodeRankCap(config.get(Settings.PROXY_DECODE_RANK_CAP))
        .setQueueSize(config.get(Settings.PROXY_QUEUE_SIZE));
  }

  /**
   * The reload of {@code routing}'s settings ({@link ConfigReload#RELOADABLE}) from the
   * configurations {@code loader} loads; {@code config} is the one the proxy started with. Once
   * applied, a raised cap gives the waiting requests the slots it opens.
   */
  public static ConfigReload reload(Vertx vertx, Supplier<Future<DuetConfig>> loader,
      DuetConfig config, Routing routing, Supplier<List<InstanceInfo>> registry,
      MeterRegistry metrics) {
    return new ConfigReload(vertx, loader, config, next -> {
      routing.reconfigure(routingOptions(next));
      routing.dispatchWaiting(registry.get());
    }, metrics);
  }

  /** The configuration file as {@link ConfigLoader} finds it: {@code --config}, else the variable. */
  private static Optional<Path> configFile(ConfigFlags flags, Map<String, String> env) {
    String variable = env.get(ConfigLoader.CONFIG_ENV);
    return flags.configFile().or(() -> variable == null || variable.isBlank()
        ? Optional.empty() : Optional.of(Path.of(variable.trim())));
  }

  private static JsonObject params(Map<String, String> values) {
    return new JsonObject(new HashMap<>(values));
  }

  /**
   * The proxy the configuration describes, in front of the instances {@code registry} lists:
   * its HTTP servers, each with a cluster backend of its own, all routing with {@code routing}.
   *
   * @param metrics the registry the proxy's metrics go to and {@code /metrics} serves
   * @param reload what {@code POST /admin/reload} runs; null for no such endpoint
   */
  public static ProxyVerticle proxy(Vertx vertx, DuetConfig config,
      Supplier<List<InstanceInfo>> registry, Routing routing, PrometheusMeterRegistry metrics,
      ConfigReload reload) {
    return new ProxyVerticle(ClusterBackend.perEventLoop(vertx, registry,
        config.get(Settings.INSTANCE_ID), routing, config.get(Settings.PROXY_STREAM_CREDITS),
        config.get(Settings.PROXY_REQUEST_TIMEOUT_SECONDS) * 1000L,
        config.get(Settings.MODEL_SERVED_NAME).stream().toList(),
        config.get(Settings.PROXY_FIRST_TOKEN_FROM_PREFILL),
        config.get(Settings.PROXY_KV_LAYER_STREAMING)),
        options(config).setInstanceId(config.get(Settings.INSTANCE_ID)), metrics, reload);
  }

  /** The front ends' options from the configuration. */
  static ProxyOptions options(DuetConfig config) {
    return new ProxyOptions().setHost(config.get(Settings.PROXY_HOST))
        .setPort(config.get(Settings.PROXY_PORT))
        .setInstances(config.get(Settings.PROXY_HTTP_INSTANCES))
        .setChatTemplate(config.get(Settings.MODEL_CHAT_TEMPLATE).orElse(null))
        .setApiKey(config.get(Settings.API_KEY).orElse(null))
        .setMaxBodyBytes(config.get(Settings.PROXY_MAX_BODY_BYTES))
        .setCompletionMaxTokens(config.get(Settings.PROXY_COMPLETION_MAX_TOKENS))
        .setChatMaxTokens(config.get(Settings.PROXY_CHAT_MAX_TOKENS))
        .setEventBusStallTimeoutMillis(
            config.get(Settings.PROXY_EVENTBUS_STALL_TIMEOUT_SECONDS) * 1000L)
        .setDrainTimeoutMillis(config.get(Settings.INSTANCE_DRAIN_TIMEOUT_SECONDS) * 1000L)
        .setMaxConnections(config.get(Settings.PROXY_MAX_CONNECTIONS))
        .setIdleTimeoutSeconds(config.get(Settings.PROXY_IDLE_TIMEOUT_SECONDS))
        .setBodyTimeoutMillis(config.get(Settings.PROXY_BODY_TIMEOUT_SECONDS) * 1000L)
        .setH2cUpgrade(config.get(Settings.PROXY_H2C_UPGRADE));
  }

  /**
   * Opens the model for a prefill instance and for the ranks of a decode instance
   * ({@code decode.dp}, one by default) and deploys both services here.
   */
  private static String startWorkers(ServiceRuntime.Member member) throws Exception {
    DuetConfig config = member.config();
    Path model;
    Path tokenizer;
    String name = config.get(Settings.MODEL_SERVED_NAME).orElse(DemoModel.SERVED_NAME);
    if (ServiceRuntime.simulated(config)) {
      model = null;
      tokenizer = null;
    } else if (config.get(Settings.MODEL_PATH).isPresent()) {
      model = config.get(Settings.MODEL_PATH).get();
      tokenizer = config.get(Settings.MODEL_TOKENIZER).orElse(null);
    } else {
      DemoModel.Written demo = DemoModel.write(Files.createTempDirectory("duet-demo"));
      model = demo.model();
      tokenizer = demo.tokenizer();
      LOG.warn("No model configured: serving the built-in demo model '{}', which has RANDOM "
          + "weights and answers with noise. Load real weights with --model PATH --tokenizer "
          + "PATH (or MODEL_PATH / TOKENIZER_PATH), e.g. a llama2.c checkpoint and its "
          + "tokenizer.bin.", name);
    }
    String id = config.get(Settings.INSTANCE_ID);
    DuetConfig prefill = config.with(Settings.INSTANCE_ID, id + "-prefill");
    ServiceRuntime.deployWorker(new ServiceRuntime.Member(member.vertx(), prefill),
        PrefillMain.create(prefill, ServiceRuntime.openEngines(config, Role.PREFILL, model,
            tokenizer, true).get(0), name));
    DuetConfig decode = config.with(Settings.INSTANCE_ID, id + "-decode");
    ServiceRuntime.deployWorkers(new ServiceRuntime.Member(member.vertx(), decode),
        ServiceRuntime.openEngines(config, Role.DECODE, model, tokenizer, true),
        DecodeMain.ranks(), name);
    return name;
  }

  /**
   * Completes with true once the registry shows a prefill and a decode instance serving
   * {@code model} (any model when null), with false when {@code limitMillis} have passed first.
   */
  private static Future<Boolean> servedWithin(Vertx vertx, Registry registry, String model,
      long limitMillis) {
    Promise<Boolean> served = Promise.promise();
    long timer = vertx.setTimer(limitMillis, t -> served.tryComplete(false));
    long poll = vertx.setPeriodic(0, 50, t -> {
      List<String> models = ClusterBackend.servedModels(registry.instances());
      if (model == null ? !models.isEmpty() : models.contains(model)) {
        served.tryComplete(true);
      }
    });
    return served.future().onComplete(r -> {
      vertx.cancelTimer(timer);
      vertx.cancelTimer(poll);
    });
  }
}
