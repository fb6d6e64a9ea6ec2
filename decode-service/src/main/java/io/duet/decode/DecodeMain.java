package io.duet.decode;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Metrics;
import io.duet.cluster.Settings;
import io.duet.contract.Role;
import io.duet.engine.Engine;
import io.duet.service.ServiceRuntime;
import io.duet.service.WorkerMain;
import picocli.CommandLine.Command;

/** {@code java -jar decode-service.jar}: one decode instance (one data-parallel rank) joining the cluster. */
@Command(name = "decode-service", mixinStandardHelpOptions = true,
    description = "Runs one decode instance: pulls prefilled KV and decodes requests "
        + "as one continuous batch.")
public final class DecodeMain extends WorkerMain {

  DecodeMain() {
    super(Role.DECODE, DecodeMain::create);
  }

  public static void main(String[] args) {
    ServiceRuntime.runMain(new DecodeMain(), args);
  }

  /** The decode verticle for a configuration and an engine. */
  public static DecodeVerticle create(DuetConfig config, Engine engine, String modelName) {
    return new DecodeVerticle(engine, DecodeOptions.from(config, modelName),
        Metrics.createRegistry(Role.DECODE.wireName(), config.get(Settings.INSTANCE_ID)));
  }
}
