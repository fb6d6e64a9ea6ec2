package io.duet.decode;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Metrics;
import io.duet.contract.Role;
import io.duet.decode.impl.LockstepStepping;
import io.duet.decode.impl.NetworkedGroupStepping;
import io.duet.decode.impl.RankStepping;
import io.duet.engine.Engine;
import io.duet.service.ServiceRuntime;
import io.duet.service.WorkerMain;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
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

  /**
   * The status a decode node exits with when its expert-parallel group spanning JVMs broke: it
   * must be restarted with the group's other nodes.
   */
  public static final int EXIT_EXPERT_GROUP_BROKEN = 3;
  private static final Logger LOG = LoggerFactory.getLogger(DecodeMain.class);

  DecodeMain() {
    super(Role.DECODE, ranks());
  }

  public static void main(String[] args) {
    ServiceRuntime.runMain(new DecodeMain(), args);
  }

  /**
   * The decode verticle of rank {@code rank} of the instance a configuration describes, on that
   * rank's engine, stepping on its own; its meters carry the rank as a tag.
   */
  public static DecodeVerticle create(DuetConfig config, Engine engine, String modelName,
      int rank) {
    return create(config, engine, modelName, rank, RankStepping.INDEPENDENT);
  }

  /**
   * Makes the decode verticles of one instance's ranks: the ranks of each expert-parallel group
   * ({@link Engine#expertParallelRanks}, ranks {@code [g * ep, (g + 1) * ep)}) step in
   * lockstep, one {@link LockstepStepping} per group in this JVM, joined by the steps of the
   * group's ranks in other JVMs when it spans several ({@link NetworkedGroupStepping}); the
   * others step on their own. One factory per instance.
   */
  public static ServiceRuntime.WorkerFactory ranks() {
    Map<Integer, LockstepStepping> groups = new HashMap<>();
    AtomicBoolean leaving = new AtomicBoolean();
    return (config, engine, modelName, rank) -> {
      int ep = engine.expertParallelRanks();
      if (ep == 1) {
        return create(config, engine, modelName, rank, RankStepping.INDEPENDENT);
      }
      RankStepping stepping = groups.computeIfAbsent(rank / ep, g -> new LockstepStepping())
          .rank(rank);
      return create(config, engine, modelName, rank, engine.options().expertNetwork() == null
          ? stepping : new NetworkedGroupStepping(stepping, engine,
              reason -> leaveBrokenGroup(leaving, reason)));
    };
  }

  /**
   * A group spanning JVMs that broke stays broken (a node stopped or failed, see
   * {@link Engine#expertGroupFailure}): this node's ranks could only fail every request, so it
   * leaves the cluster as on SIGTERM (draining is quick: each request fails at once) and exits
   * with {@link #EXIT_EXPERT_GROUP_BROKEN}, for its supervisor to restart it with the other
   * nodes of the group, which do the same.
   */
  private static void leaveBrokenGroup(AtomicBoolean leaving, String reason) {
    if (!leaving.compareAndSet(false, true)) {
      return;
    }
    LOG.error("the expert-parallel group spanning JVMs is broken ({}): this node's ranks can "
        + "decode nothing more, so it leaves the cluster and exits with status {}; restart it "
        + "with the other nodes of its group", reason, EXIT_EXPERT_GROUP_BROKEN);
    // A thread of its own: the exit's shutdown hook waits for the engine threads, one of which
    // calls this, and an exit called while the JVM shuts down already would block for good.
    Thread exit = new Thread(() -> System.exit(EXIT_EXPERT_GROUP_BROKEN),
        "duet-expert-group-broken");
    exit.setDaemon(true);
    exit.start();
  }

  private static DecodeVerticle create(DuetConfig config, Engine engine, String modelName,
      int rank, RankStepping stepping) {
    DecodeOptions options = DecodeOptions.from(config, modelName, rank);
    PrometheusMeterRegistry metrics = Metrics.createRegistry(Role.DECODE.wireName(),
        options.instanceId());
    metrics.config().commonTags(Metrics.TAG_RANK, String.valueOf(rank));
    return new DecodeVerticle(engine, options, stepping, metrics);
  }
}
