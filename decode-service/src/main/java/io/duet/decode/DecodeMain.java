package io.duet.decode;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Metrics;
import io.duet.contract.Role;
import io.duet.engine.Engine;
import io.duet.service.ServiceRuntime;
import io.duet.service.WorkerMain;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import picocli.CommandLine.Command;

/**
 * {@code java -jar decode-service.jar}: one decode instance joining the cluster, with its
 * {@code decode.dp} data-parallel ranks in this JVM, each a {@link DecodeVerticle} on an engine
 * of its own over one load of the model.
 */
@Command(name = "decode-service", mixinStandardHelpOptions = true,
    description = "Runs one decode instance: pulls prefilled KV and decodes requests "
        + "as one continuous batch per data-parallel rank.")
public final class DecodeMain extends WorkerMain {

  DecodeMain() {
    super(Role.DECODE, DecodeMain::create);
  }

  public static void main(String[] args) {
    ServiceRuntime.runMain(new DecodeMain(), args);
  }

  /**
   * The decode verticle of rank {@code rank} of the instance a configuration describes, on that
   * rank's engine; its meters carry the rank as a tag.
   */
  public static DecodeVerticle create(DuetConfig config, Engine engine, String modelName,
      int rank) {
    DecodeOptions options = DecodeOptions.from(config, modelName, rank);
    PrometheusMeterRegistry metrics = Metrics.createRegistry(Role.DECODE.wireName(),
        options.instanceId());
    metrics.config().commonTags(Metrics.TAG_RANK, String.valueOf(rank));
    return new DecodeVerticle(engine, options, metrics);
  }
}
