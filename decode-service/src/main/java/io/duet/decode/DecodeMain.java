package io.duet.decode;

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

/** {@code java -jar decode-service.jar}: one decode instance (one data-parallel rank) joining the cluster. */
@Command(name = "decode-service", mixinStandardHelpOptions = true,
    description = "Runs one decode instance: pulls prefilled KV and decodes "
        + "requests as one continuous batch.")
public final class DecodeMain implements Callable<Integer> {

  @Mixin
  ConfigFlags flags;

  public static void main(String[] args) {
    ServiceRuntime.relaunchIfNeeded(DecodeMain.class, args);
    int exit = new CommandLine(new DecodeMain()).execute(args);
    if (exit != 0) {
      System.exit(exit);
    }
  }

  @Override
  public Integer call() throws Exception {
    DuetConfig config = ServiceRuntime.loadConfig(Role.DECODE, flags);
    Path model = ServiceRuntime.requireModel(config);
    Engine engine = ServiceRuntime.openEngine(config, model, config.tokenizerPath().orElse(null),
        config.decodeKvCacheMb(), config.decodeThreads());
    ServiceRuntime.Member member = ServiceRuntime.join(config);
    deploy(member, engine, ServiceRuntime.modelName(config, model));
    return 0;
  }

  /** Deploys a decode instance on a member and starts its heartbeat. */
  public static DecodeVerticle deploy(ServiceRuntime.Member member, Engine engine,
      String modelName) throws Exception {
    DuetConfig config = member.config();
    DecodeVerticle verticle = new DecodeVerticle(engine,
        DecodeOptions.from(config, modelName),
        Metrics.createRegistry(Role.DECODE.wireName(), config.instanceId()));
    ServiceRuntime.await(member.vertx().deployVerticle(verticle));
    Heartbeat.start(member.vertx(), config, verticle::info);
    return verticle;
  }
}
