package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.contract.Role;
import io.duet.engine.ModelInfo;
import io.vertx.core.Vertx;
import io.vertx.junit5.VertxExtension;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Topology files: the shipped ones load, every process takes its own section with the derived
 * cluster settings, and a broken file fails with every problem at once under the file's keys.
 */
@ExtendWith(VertxExtension.class)
class TopologyTest {

  private static final Path SHIPPED = Path.of("topologies");
  /** A valid 2P1D whose sections the tests break one way or another. */
  private static final String TWO_P_ONE_D = """
      cluster: {name: duet-test}
      model: {served-name: deepseek}
      decode: {max-num-seqs: 8}
      instances:
        c0: {role: proxy, host: 127.0.0.1, cluster-port: 5701, proxy: {port: 7000}}
        p0: {role: prefill, host: 127.0.0.1, cluster-port: 5702,
             prefill: {kv-port: 6100, http-port: 8100}}
        p1: {role: prefill, host: 127.0.0.1, cluster-port: 5703,
             prefill: {kv-port: 6101, http-port: 8101}}
        d0: {role: decode, host: 127.0.0.1, cluster-port: 5704,
             decode: {dp: 2, tp: 1, http-port: 9100, num-speculative-tokens: 1,
                      decode-gear-list: [16]}}
      """;

  @TempDir
  Path dir;

  @Test
  void everyShippedTopologyLoads(Vertx vertx) throws Exception {
    List<String> names;
    try (Stream<Path> files = Files.list(SHIPPED)) {
      names = files.map(file -> file.getFileName().toString()).sorted().toList();
    }
    assertEquals(List.of("18p1d-ep144.yaml", "1p1d-ep4-2jvms.yaml", "1p1d.yaml", "2p1d.yaml",
        "4p1d.yaml", "8p1d.yaml"), names);
    for (String name : names) {
      Topology topology = topology(vertx, SHIPPED.resolve(name), Map.of());
      assertEquals(Role.PROXY, topology.instance("c0").orElseThrow().role(), name);
      assertEquals(7000, topology.instance("c0").orElseThrow().config().get(Settings.PROXY_PORT));
    }

    Topology reference = topology(vertx, SHIPPED.resolve("18p1d-ep144.yaml"), Map.of());
    assertEquals(20, reference.instances().size());
    assertEquals(18, reference.instances().stream().filter(i -> i.role() == Role.PREFILL)
        .filter(i -> i.config().get(Settings.PREFILL_TP) == 16).count());
    Topology.Instance decode = reference.instance("d0").orElseThrow();
    assertEquals(144, decode.config().get(Settings.DECODE_EP));
    assertEquals(List.of(120), decode.config().get(Settings.DECODE_GEAR_LIST));
    assertEquals(IntStream.range(9100, 9244).boxed().toList(), decode.healthEndpoints().stream()
        .map(Topology.Endpoint::port).toList(), "a status port per rank, from 9100");
    assertEquals(IntStream.range(0, 144).boxed().toList(), decode.healthEndpoints().stream()
        .map(Topology.Endpoint::rank).toList());
  }

  @Test
  void eachProcessTakesItsSectionOverTheFilesSettings(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "2p1d.yaml", TWO_P_ONE_D);
    DuetConfig p1 = load(vertx, Role.PREFILL, "--config", file.toString(), "--instance", "p1");
    assertEquals("p1", p1.get(Settings.INSTANCE_ID));
    assertEquals(5703, p1.get(Settings.CLUSTER_PORT));
    assertEquals(1, p1.get(Settings.CLUSTER_PORT_COUNT), "a fixed, known port");
    assertEquals("127.0.0.1", p1.get(Settings.CLUSTER_HOST));
    assertEquals(List.of("127.0.0.1:5701", "127.0.0.1:5702", "127.0.0.1:5703", "127.0.0.1:5704"),
        p1.get(Settings.CLUSTER_MEMBERS));
    assertEquals(6101, p1.get(Settings.PREFILL_KV_PORT));
    assertEquals("duet-test", p1.get(Settings.CLUSTER_NAME));
    assertEquals("file", p1.source("prefill.kv-port"));

    DuetConfig d0 = load(vertx, Role.DECODE, "--config", file.toString(), "--instance", "d0",
        "--set", "decode.max-num-seqs=8");
    assertEquals(8, d0.get(Settings.DECODE_MAX_NUM_SEQS), "the file's settings apply");
    assertEquals(2, d0.get(Settings.DECODE_RANKS), "unset: dp x tp");

    DuetConfig c0 = load(vertx, Role.PROXY, "--config", file.toString(), "--instance", "c0",
        "--port", "7100");
    assertEquals(false, c0.get(Settings.PROXY_EMBEDDED), "the topology names the workers");
    assertEquals(7100, c0.get(Settings.PROXY_PORT), "flags stay above the file");
  }

  @Test
  void anInstanceOfAnotherRoleOrNoneNamedIsRefusedNamingTheChoices(Vertx vertx)
      throws Exception {
    Path file = Configs.yaml(dir, "2p1d.yaml", TWO_P_ONE_D);
    String source = "file: " + file.toAbsolutePath();
    assertEquals(List.of(new Problem("instances.d0.role", "prefill, the role of the service "
            + "started (d0 is a decode instance: start it with the decode service)", "'decode'",
            source)),
        problems(vertx, Role.PREFILL, "--config", file.toString(), "--instance", "d0"));
    String names = "the instances of " + file.toAbsolutePath() + ": c0, p0, p1, d0";
    assertEquals(List.of(new Problem("--instance", "one of " + names, "'p7'",
            "flag: --instance")),
        problems(vertx, Role.PREFILL, "--config", file.toString(), "--instance", "p7"));
    assertEquals(List.of(new Problem("--instance", "the name of one of " + names, "nothing",
            "flag: --instance")),
        problems(vertx, Role.PREFILL, "--config", file.toString()));

    Path plain = Configs.yaml(dir, "plain.yaml", "decode: {max-num-seqs: 8}\n");
    assertEquals(List.of(new Problem("--instance", "a --config topology file with an "
            + "'instances:' section", "'p0'", "flag: --instance")),
        problems(vertx, Role.PREFILL, "--config", plain.toString(), "--instance", "p0"));
    assertEquals(8, load(vertx, Role.DECODE, "--config", plain.toString())
        .get(Settings.DECODE_MAX_NUM_SEQS), "a file without instances works as before");
  }

  @Test
  void aBrokenFileReportsEveryProblemAtOnceUnderItsKeys(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "broken.yaml", """
        cluster: {name: duet-test}
        prefil: {threads: 1}
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: 5701, proxy: {port: 7000}}
          p0: {role: prefill, hots: 127.0.0.1, cluster-port: 5702,
               prefill: {kv-port: 6100, http-port: 8100}, decode: {dp: 2}}
          p1: {role: prefill, host: 127.0.0.1, cluster-port: 5701,
               prefill: {kv-port: 6100, http-port: 9101}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: 5704,
               decode: {ranks: 3, dp: 2, tp: 1, http-port: 9100, max-num-seq: 8,
                        max-num-seqs: 32, num-speculative-tokens: 1, decode-gear-list: [32]}}
        """);
    String source = "file: " + file.toAbsolutePath();
    List<Problem> problems = assertInstanceOf(InvalidConfigException.class,
        topologyFailure(vertx, file)).problems();
    assertEquals(List.of(
        new Problem("prefil.threads", "a known key (did you mean prefill.threads?)", "'1'",
            source),
        new Problem("instances.p0.host", "a non-empty string", "nothing", source),
        new Problem("instances.p0.decode.dp", "no decode.* key in a prefill instance", "'2'",
            source),
        new Problem("instances.p0.hots", "a known key (did you mean host?)", "'127.0.0.1'",
            source),
        new Problem("instances.d0.decode.max-num-seq",
            "a known key (did you mean decode.max-num-seqs?)", "'8'", source),
        new Problem("instances.d0.decode.ranks", "2 (= decode.dp x decode.tp)", "'3'", source),
        new Problem("instances.d0.decode.decode-gear-list",
            "[64] (= [decode.max-num-seqs x (1 + decode.num-speculative-tokens)])", "'[32]'",
            source),
        new Problem("instances.p1.cluster-port", "a port nothing else of the topology uses on "
            + "127.0.0.1 (5701 is also instances.c0.cluster-port)", "'5701'", source),
        new Problem("instances.p1.prefill.kv-port", "a port nothing else of the topology uses on "
            + "127.0.0.1 (6100 is also instances.p0.prefill.kv-port)", "'6100'", source),
        new Problem("instances.d0.decode.http-port", "a port nothing else of the topology uses "
            + "on 127.0.0.1 (rank 1's status port 9101 is also instances.p1.prefill.http-port)",
            "'9100'", source)), problems);
  }

  @Test
  void aTopologyNamesEveryPortAndEveryRole(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "loose.yaml", """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: 5701, proxy: {port: 7000}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: 5702, decode: {dp: 4}}
          x1: {role: prefil, host: 127.0.0.1}
        """);
    String source = "file: " + file.toAbsolutePath();
    assertEquals(List.of(
            new Problem("instances.x1.role", "one of proxy, prefill, decode", "'prefil'", source),
            new Problem("instances.x1.cluster-port", "an integer in 1..65535", "nothing", source),
            new Problem("instances.d0.decode.http-port", "a fixed port (a topology names every "
                + "port; 0 would be any free one)", "'0'", "default")),
        assertInstanceOf(InvalidConfigException.class, topologyFailure(vertx, file)).problems());

    Path noDecode = Configs.yaml(dir, "no-decode.yaml", """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: 5701, proxy: {port: 7000}}
        """);
    assertEquals(List.of(new Problem("instances",
            "at least one proxy, one prefill and one decode instance",
            "no prefill instance, no decode instance", "file: " + noDecode.toAbsolutePath())),
        assertInstanceOf(InvalidConfigException.class, topologyFailure(vertx, noDecode))
            .problems());
  }

  @Test
  void theExpertParallelSizeMustDivideTheModelsRoutedExperts(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "ep.yaml", TWO_P_ONE_D.replace("dp: 2, tp: 1,",
        "dp: 6, tp: 1, ep: 6,"));
    Topology.Instance d0 = topology(vertx, file, Map.of()).instance("d0").orElseThrow();
    ModelInfo moe = new ModelInfo("moe", 512, 128, 1, List.of(2), "plain", "test", 256);
    assertEquals(List.of(new Problem("instances.d0.decode.ep",
            "a divisor of the 256 routed experts of the model moe", "'6'",
            "file: " + file.toAbsolutePath())), d0.modelProblems(moe));
    ModelInfo dense = new ModelInfo("dense", 512, 128, 1, List.of(2), "plain", "test", 0);
    assertEquals(List.of(), d0.modelProblems(dense), "a dense model takes any EP size");
    assertEquals(List.of(), ModelChecks.problems(d0.config().with(Settings.DECODE_EP, 2), moe));
    // 288 slots (256 experts and 32 copies) over 6 or 144 ranks, as the reference's EP144
    DuetConfig slots = d0.config().with(Settings.DECODE_EXPERT_SLOTS, 288);
    assertEquals(List.of(), ModelChecks.problems(slots, moe));
    DuetConfig fiveRanks = slots.with(Settings.DECODE_EP, 1).with(Settings.DECODE_DP, 5)
        .with(Settings.DECODE_EP, 5);
    assertEquals(List.of("decode.ep: a divisor of the 288 expert slots, not '5'"),
        described(ModelChecks.problems(fiveRanks, moe)));
    assertEquals(List.of("decode.expert-slots: 0 or at least the 256 routed experts of the model "
        + "moe, not '200'"), described(ModelChecks.problems(
            d0.config().with(Settings.DECODE_EXPERT_SLOTS, 200), moe)));
  }

  @Test
  void theExpertParallelSizeMustDivideTheDecodeRanks(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "ep-dp.yaml", TWO_P_ONE_D.replace("dp: 2, tp: 1,",
        "dp: 2, tp: 1, ep: 4,"));
    List<Problem> problems = assertInstanceOf(InvalidConfigException.class,
        topologyFailure(vertx, file)).problems();
    assertEquals(1, problems.size(), problems::toString);
    assertEquals("instances.d0.decode.ep", problems.get(0).key());
    assertTrue(problems.get(0).expected().contains("that is 1 or divides decode.dp"),
        problems::toString);
  }

  @Test
  void anExpertParallelInstanceSpansTheNodesItsDecodeInstancesList(Vertx vertx)
      throws Exception {
    Topology topology = topology(vertx, SHIPPED.resolve("1p1d-ep4-2jvms.yaml"), Map.of());
    Topology.Instance d1 = topology.instance("d1").orElseThrow();
    assertEquals(List.of(9300, 9301, 9310, 9311), ExpertParallelNodes.rankAddresses(d1.config())
        .stream().map(InetSocketAddress::getPort).toList(), "every rank of both nodes, in order");
    assertEquals(2, ExpertParallelNodes.firstRank(d1.config()));
    assertEquals(0, ExpertParallelNodes.firstRank(
        topology.instance("d0").orElseThrow().config()));
    assertEquals(List.of(5704, 9110, 9111, 9310, 9311), d1.ports().stream()
        .map(Topology.Endpoint::port).toList(), "its cluster, status and data-channel ports");
    assertEquals(List.of(9110, 9111), d1.healthEndpoints().stream()
        .map(Topology.Endpoint::port).toList(), "the data channel answers no health check");
    assertEquals(List.of(), ExpertParallelNodes.rankAddresses(
        topology(vertx, SHIPPED.resolve("2p1d.yaml"), Map.of()).instance("d0").orElseThrow()
            .config()), "without decode.ep-nodes every rank is in the one JVM");
    // a group lies in one JVM or holds whole JVMs: 3 nodes of 2 ranks take EP 1, 2 and 6
    DuetConfig threeNodes = d1.config().with(Settings.DECODE_EP, 2)
        .with(Settings.DECODE_EP_NODES, List.of("127.0.0.1:9300", "127.0.0.1:9310",
            "127.0.0.1:9320"));
    assertEquals(List.of(1, 2, 6), IntStream.rangeClosed(1, 8)
        .filter(ep -> ep == 1 || ExpertParallelNodes.groupsFit(threeNodes, ep)).boxed().toList());
  }

  @Test
  void theNodesOfAnExpertParallelInstanceMustAgreeAndFit(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "ep-nodes.yaml", """
        cluster: {name: duet-test}
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: 5701, proxy: {port: 7000}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: 5702,
               prefill: {kv-port: 6100, http-port: 8100}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: 5703,
               decode: {dp: 2, ep: 4, http-port: 9100, ep-node: 0,
                        ep-nodes: [127.0.0.1:9300, 127.0.0.2:9310, 127.0.0.1:9320]}}
          d1: {role: decode, host: 127.0.0.1, cluster-port: 5704,
               decode: {dp: 2, ep: 4, http-port: 9110, ep-node: 0,
                        ep-nodes: [127.0.0.1:9300, 127.0.0.2:9310, 127.0.0.1:9320]}}
          d2: {role: decode, host: 127.0.0.1, cluster-port: 5705,
               decode: {dp: 2, ep: 2, http-port: 9301, ep-node: 1,
                        ep-nodes: [127.0.0.1:9300, 127.0.0.2:9310, 127.0.0.1:9320]}}
          d3: {role: decode, host: 127.0.0.1, cluster-port: 5706,
               decode: {dp: 3, ep: 6, http-port: 9120, ep-node: 2,
                        ep-nodes: [127.0.0.1:9400, "127.0.0.1"]}}
        """);
    String source = "file: " + file.toAbsolutePath();
    List<Problem> problems = assertInstanceOf(InvalidConfigException.class,
        topologyFailure(vertx, file)).problems();
    String epFits = "a value that is 1 or divides decode.dp, or, with decode.ep-nodes, a "
        + "multiple of decode.dp that divides decode.dp x the nodes";
    String nodes = "'[127.0.0.1:9300, 127.0.0.2:9310, 127.0.0.1:9320]'";
    assertEquals(List.of(
        // 6 ranks in 3 nodes of 2 cannot form groups of 4
        new Problem("instances.d0.decode.ep", epFits, "'4'", source),
        new Problem("instances.d1.decode.ep", epFits, "'4'", source),
        new Problem("instances.d3.decode.ep-nodes", "a value with a port in each item and room "
            + "for a port per rank (PORT + decode.dp - 1 at most 65535)",
            "'[\"127.0.0.1:9400\",\"127.0.0.1\"]'", source),
        new Problem("instances.d3.decode.ep-node", "a value that is an index of "
            + "decode.ep-nodes (0 when it is empty)", "'2'", source),
        new Problem("instances.d1.decode.ep-nodes", "a port nothing else of the topology uses "
            + "on 127.0.0.1 (rank 0's data-channel port 9300 is also "
            + "instances.d0.decode.ep-nodes (rank 0))", nodes, source),
        new Problem("instances.d1.decode.ep-nodes", "a port nothing else of the topology uses "
            + "on 127.0.0.1 (rank 1's data-channel port 9301 is also "
            + "instances.d0.decode.ep-nodes (rank 1))", nodes, source),
        new Problem("instances.d2.decode.http-port", "a port nothing else of the topology uses "
            + "on 127.0.0.1 (rank 0's status port 9301 is also instances.d0.decode.ep-nodes "
            + "(rank 1))", "'9301'", source),
        new Problem("instances.d1.decode.ep-node", "a node index no other decode instance with "
            + "the same decode.ep-nodes has (d0 has it)", "'0'", source),
        new Problem("instances.d2.decode.ep-nodes", "item 1, this node's, on its cluster.host "
            + "127.0.0.1", nodes, source),
        new Problem("instances.d2.decode.ep", "4, as d0 of the same decode.ep-nodes has", "'2'",
            source)), problems);
  }

  @Test
  void theEnvironmentAppliesToEveryInstance(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "2p1d.yaml", TWO_P_ONE_D);
    Topology topology = topology(vertx, file, Map.of("MODEL_PATH", "/models/m.bin"));
    for (Topology.Instance instance : topology.instances()) {
      assertEquals(Path.of("/models/m.bin"),
          instance.config().get(Settings.MODEL_PATH).orElseThrow(), instance.name());
    }
    assertEquals("duet-test", topology.shared().get(Settings.CLUSTER_NAME));
    assertEquals(4, topology.shared().get(Settings.CLUSTER_MEMBERS).size());
  }

  // ------------------------------------------------------------------------------ helpers

  private static List<String> described(List<Problem> problems) {
    return problems.stream().map(p -> p.key() + ": " + p.expected() + ", not " + p.found())
        .toList();
  }

  private static Topology topology(Vertx vertx, Path file, Map<String, String> env)
      throws Exception {
    return ConfigLoader.loadTopology(vertx, file, env).toCompletionStage().toCompletableFuture()
        .get(10, TimeUnit.SECONDS);
  }

  private static Throwable topologyFailure(Vertx vertx, Path file) throws Exception {
    try {
      Topology topology = topology(vertx, file, Map.of());
      throw new AssertionError("loaded, but should have failed: " + topology.instances());
    } catch (ExecutionException e) {
      return e.getCause();
    }
  }

  private static DuetConfig load(Vertx vertx, Role role, String... args) throws Exception {
    return ConfigLoader.load(vertx, role, ConfigFlags.parse(args), Map.of())
        .toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  private static List<Problem> problems(Vertx vertx, Role role, String... args)
      throws Exception {
    try {
      DuetConfig config = load(vertx, role, args);
      throw new AssertionError("loaded, but should have failed: " + config.describe());
    } catch (ExecutionException e) {
      assertTrue(e.getCause() instanceof InvalidConfigException, e.getCause().toString());
      return ((InvalidConfigException) e.getCause()).problems();
    }
  }
}
