package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.decode.DecodeMain;
import io.duet.deploy.impl.LaunchRecord;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * {@link ExpertParallelServing} with the ranks of one expert-parallel group in two JVMs:
 * {@code 1p1d-ep4-over-2-jvms.yaml} (test resources) has decode instances d0 and d1 of 2 ranks
 * each form one group of 4 ({@code decode.ep-nodes}), whose all-to-all runs over TCP. Every JVM
 * joins the steps the other begins, so concurrent requests on either decode as the engine alone
 * does, and every rank of both JVMs exchanges. Last, a node killed breaks the group, and the
 * other node leaves the cluster and exits, saying why.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ExpertParallelAcrossJvmsIT extends ExpertParallelServing {

  private static final String TOPOLOGY = "1p1d-ep4-over-2-jvms.yaml";
  /** 4 cluster ports, the proxy's, p0's KV and status, 2 status and 2 data ports per node. */
  private static final int PORTS = 15;
  private static final int PROXY = 4;
  private static final Pattern PORT = Pattern.compile("@(\\d+)@");

  @BeforeAll
  void upTheTopology() throws Exception {
    String template = resource(TOPOLOGY);
    up(TOPOLOGY, PORTS, first -> launched.smallCluster() + PORT.matcher(template)
        .replaceAll(port -> String.valueOf(first + Integer.parseInt(port.group(1)))));
    for (String node : List.of("d0", "d1")) {
      String log = Files.readString(launched.log(node));
      assertTrue(log.contains("expert parallelism: 1 groups of 4 ranks, each rank holding 4 of "
          + "16 expert slots"), node + "'s log says how it split the experts");
    }
  }

  @Override
  int proxyPort() {
    return PROXY;
  }

  /** d0's ranks 0 and 1, then d1's (ranks 2 and 3 of the group). */
  @Override
  List<Integer> rankStatusPorts() {
    return List.of(7, 8, 9, 10);
  }

  @Test
  @Order(Integer.MAX_VALUE) // it breaks the group: after the others
  void whenANodeDiesTheOtherLeavesTheClusterAndExitsSayingWhy() throws Exception {
    ProcessHandle d0 = process("d0");
    process("d1").destroyForcibly();
    // its readers see the connections end at once: no exchange timeout to wait for
    d0.onExit().get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    String log = Files.readString(launched.log("d0"));
    assertTrue(log.contains("the expert-parallel group spanning JVMs is broken ("), log);
    assertTrue(log.contains("exits with status " + DecodeMain.EXIT_EXPERT_GROUP_BROKEN), log);
    assertTrue(log.contains("Left the cluster"), "it left the cluster as on SIGTERM: " + log);
  }

  private ProcessHandle process(String instance) {
    return launched.record().running().stream()
        .filter(started -> started.instance().equals(instance)).findFirst()
        .flatMap(LaunchRecord.Started::process)
        .orElseThrow(() -> new AssertionError(instance + " does not run"));
  }

  private static String resource(String name) throws IOException {
    try (InputStream in = ExpertParallelAcrossJvmsIT.class.getResourceAsStream("/" + name)) {
      if (in == null) {
        throw new IOException(name + " is not among the test resources");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }
}
