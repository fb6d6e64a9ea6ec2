package io.duet.decode;

import io.duet.cluster.ConfigFlags;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Metrics;
import io.duet.cluster.protocol.Role;
import io.duet.engine.Engine;
import io.duet.service.ServiceRuntime;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code java -jar decode-service.jar}: one decode instance (one data-parallel rank) joining the cluster. */
@Command(name = "decode-service", mixinStandardHelpOptions = true,
    description = "Runs one decode instance: pulls prefilled KV and decodes requests "
        + "as one continuous batch.")
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
    ServiceRuntime.runWorker(Role.DECODE, flags, DecodeMain::create);
    return 0;
  }

  /** The decode verticle for a configuration and an engine. */
  public static DecodeVerticle create(DuetConfig config, Engine engine, String modelName) {
    return new DecodeVerticle(engine, DecodeOptions.from(config, modelName),
        Metrics.createRegistry(Role.DECODE.wireName(), config.instanceId()));
  }
}
