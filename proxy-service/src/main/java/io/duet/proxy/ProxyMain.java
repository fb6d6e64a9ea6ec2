package io.duet.proxy;

import io.duet.cluster.ConfigFlags;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Heartbeat;
import io.duet.cluster.Metrics;
import io.duet.cluster.Registry;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.decode.DecodeMain;
import io.duet.prefill.PrefillMain;
import io.duet.proxy.cluster.ClusterBackend;
import io.duet.service.ServiceRuntime;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
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

  @Mixin
  ConfigFlags flags;

  @Option(names = "--embedded", negatable = true, description = "Also run a prefill and a "
      + "decode instance in this JVM (default: proxy.embedded, true unless configured).")
  Boolean embedded;

  public static void main(String[] args) {
    ServiceRuntime.runMain(new ProxyMain(), args);
  }

  @Override
  public Integer call() throws Exception {
    DuetConfig config = ServiceRuntime.loadConfig(Role.PROXY, flags);
    boolean withWorkers = embedded != null ? embedded : config.proxyEmbedded();
    ServiceRuntime.Member member = ServiceRuntime.join(config);
    Vertx vertx = member.vertx();
    Registry registry = Registry.create(vertx, config);
    ServiceRuntime.await(registry.ready());
    String servedModel = withWorkers ? startWorkers(member) : null;

    ProxyVerticle proxy = new ProxyVerticle(ClusterBackend.perEventLoop(vertx,
            registry::instances, config.instanceId(), config.proxyStreamCredits(),
            config.proxyRequestTimeoutSeconds() * 1000L),
        options(config).setInstanceId(config.instanceId()),
        Metrics.createRegistry(Role.PROXY.wireName(), config.instanceId()));
    ServiceRuntime.await(vertx.deployVerticle(proxy));
    Heartbeat.start(vertx, config, () -> new InstanceInfo(config.instanceId(), Role.PROXY, 0,
        config.proxyHost(), proxy.actualPort(), 0, "", "", 0,
        new InstanceInfo.Load(0, 0, 0, 0, 0), System.currentTimeMillis()));
    if (servedModel != null) {
      ServiceRuntime.await(servedBy(vertx, registry, servedModel));
    }
    LOG.info("Duet proxy {} ready on http://{}:{}/v1 serving {}", config.instanceId(),
        config.proxyHost(), proxy.actualPort(), servedModel != null ? servedModel
            : "the models of the cluster's prefill and decode instances");
    return 0;
  }

  /** The front ends' options from the configuration. */
  static ProxyOptions options(DuetConfig config) {
    return new ProxyOptions().setHost(config.proxyHost()).setPort(config.proxyPort())
        .setInstances(config.proxyHttpInstances()).setChatTemplate(config.chatTemplate())
        .setApiKey(config.apiKey().orElse(null));
  }

  /** Opens the model twice (a prefill and a decode engine) and deploys both services here. */
  private static String startWorkers(ServiceRuntime.Member member) throws Exception {
    DuetConfig config = member.config();
    Path model;
    Path tokenizer;
    String name;
    if (config.modelPath().isPresent()) {
      model = config.modelPath().get();
      tokenizer = config.tokenizerPath().orElse(null);
      name = ServiceRuntime.modelName(config, model);
    } else {
      DemoModel.Written demo = DemoModel.write(Files.createTempDirectory("duet-demo"));
      model = demo.model();
      tokenizer = demo.tokenizer();
      name = config.servedModelName().orElse(DemoModel.SERVED_NAME);
      LOG.warn("No model configured: serving the built-in demo model '{}', which has RANDOM "
          + "weights and answers with noise. Load real weights with --model PATH --tokenizer "
          + "PATH (or MODEL_PATH / TOKENIZER_PATH), e.g. a llama2.c checkpoint and its "
          + "tokenizer.bin.", name);
    }
    String id = config.instanceId();
    DuetConfig prefill = config.with("instance.id", id + "-prefill");
    ServiceRuntime.deployWorker(new ServiceRuntime.Member(member.vertx(), prefill),
        PrefillMain.create(prefill, ServiceRuntime.openEngine(config, Role.PREFILL, model,
            tokenizer, true), name));
    DuetConfig decode = config.with("instance.id", id + "-decode");
    ServiceRuntime.deployWorker(new ServiceRuntime.Member(member.vertx(), decode),
        DecodeMain.create(decode, ServiceRuntime.openEngine(config, Role.DECODE, model,
            tokenizer, true), name));
    return name;
  }

  /** Completes once the registry shows a prefill and a decode instance serving the model. */
  private static io.vertx.core.Future<Void> servedBy(Vertx vertx, Registry registry,
      String model) {
    Promise<Void> served = Promise.promise();
    long timer = vertx.setTimer(READY_TIMEOUT_MILLIS, t -> served.tryFail(
        "the embedded prefill and decode instances did not register within "
            + READY_TIMEOUT_MILLIS + " ms"));
    long poll = vertx.setPeriodic(0, 50, t -> {
      if (ClusterBackend.servedModels(registry.instances()).contains(model)) {
        served.tryComplete();
      }
    });
    return served.future().onComplete(r -> {
      vertx.cancelTimer(timer);
      vertx.cancelTimer(poll);
    });
  }
}
