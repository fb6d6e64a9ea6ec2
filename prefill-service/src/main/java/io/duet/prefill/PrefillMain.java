package io.duet.prefill;

import io.duet.cluster.ConfigFlags;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Heartbeat;
import io.duet.cluster.Metrics;
import io.duet.cluster.protocol.Role;
import io.duet.engine.Engine;
import io.duet.service.ServiceRuntime;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code java -jar prefill-service.jar}: one prefill instance joining the cluster. */
@Command(name = "prefill-service", mixinStandardHelpOptions = true,
    description = "Runs one prefill instance: prefills prompts and serves their KV to decode "
        + "instances.")
public final class PrefillMain implements Callable<Integer> {

  @Mixin
  ConfigFlags flags;

  public static void main(String[] args) {
    ServiceRuntime.relaunchIfNeeded(PrefillMain.class, args);
    int exit = new CommandLine(new PrefillMain()).execute(args);
    if (exit != 0) {
      System.exit(exit);
    }
  }

  @Override
  public Integer call() throws Exception {
    DuetConfig config = ServiceRuntime.loadConfig(Role.PREFILL, flags);
    Path model = ServiceRuntime.requireModel(config);
    Engine engine = ServiceRuntime.openEngine(config, model, config.tokenizerPath().orElse(null),
        config.prefillKvCacheMb(), config.prefillThreads());
    ServiceRuntime.Member member = ServiceRuntime.join(config);
    deploy(member, engine, ServiceRuntime.modelName(config, model));
    return 0;
  }

  /** Deploys a prefill instance on a member and starts its heartbeat. */
  public static PrefillVerticle deploy(ServiceRuntime.Member member, Engine engine,
      String modelName) throws Exception {
    DuetConfig config = member.config();
    PrefillVerticle verticle = new PrefillVerticle(engine,
        PrefillOptions.from(config, modelName),
        Metrics.createRegistry(Role.PREFILL.wireName(), config.instanceId()));
    ServiceRuntime.await(member.vertx().deployVerticle(verticle));
    Heartbeat.start(member.vertx(), config, verticle::info);
    return verticle;
  }
}
