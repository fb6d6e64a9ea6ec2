package io.duet.prefill;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Metrics;
import io.duet.cluster.Settings;
import io.duet.contract.Role;
import io.duet.engine.Engine;
import io.duet.service.ServiceRuntime;
import io.duet.service.WorkerMain;
import picocli.CommandLine.Command;

/** {@code java -jar prefill-service.jar}: one prefill instance joining the cluster. */
@Command(name = "prefill-service", mixinStandardHelpOptions = true,
    description = "Runs one prefill instance: prefills prompts and serves their KV to decode "
        + "instances.")
public final class PrefillMain extends WorkerMain {

  PrefillMain() {
    // A prefill instance is one rank.
    super(Role.PREFILL, (config, engine, modelName, rank) -> create(config, engine, modelName));
  }

  public static void main(String[] args) {
    ServiceRuntime.runMain(new PrefillMain(), args);
  }

  /** The prefill verticle for a configuration and an engine. */
  public static PrefillVerticle create(DuetConfig config, Engine engine, String modelName) {
    return new PrefillVerticle(engine, PrefillOptions.from(config, modelName),
        Metrics.createRegistry(Role.PREFILL.wireName(), config.get(Settings.INSTANCE_ID)));
  }
}
