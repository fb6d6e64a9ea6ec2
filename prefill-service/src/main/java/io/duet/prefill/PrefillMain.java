package io.duet.prefill;

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
    ServiceRuntime.runWorker(Role.PREFILL, flags, PrefillMain::create);
    return 0;
  }

  /** The prefill verticle for a configuration and an engine. */
  public static PrefillVerticle create(DuetConfig config, Engine engine, String modelName) {
    return new PrefillVerticle(engine, PrefillOptions.from(config, modelName),
        Metrics.createRegistry(Role.PREFILL.wireName(), config.instanceId()));
  }
}
