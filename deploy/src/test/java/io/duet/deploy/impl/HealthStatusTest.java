package io.duet.deploy.impl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.Topology;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.service.ServiceTests;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonObject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What {@code up} waits for and {@code status} reports without a registry: an endpoint serves
 * when its {@code /health} names the instance and rank the topology expects there.
 */
class HealthStatusTest {

  private final Vertx vertx = Vertx.vertx();

  @TempDir
  Path dir;

  @AfterEach
  void closeVertx() throws Exception {
    ServiceTests.await(vertx.close());
  }

  @Test
  void anEndpointServesWhenItNamesTheInstanceAndRankExpectedThere() throws Exception {
    int prefill = serveHealth(info("p0", Role.PREFILL, 0));
    int staleDecode = serveHealth(info("d0-of-another-run", Role.DECODE, 0));
    int nothing = LocalHosts.freePort("127.0.0.1");
    Topology topology = Topologies.load(Files.writeString(dir.resolve("t.yaml"), """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: 5701, proxy: {port: %d}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: 5702,
               prefill: {kv-port: 6100, http-port: %d}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: 5703, decode: {http-port: %d}}
        """.formatted(nothing, prefill, staleDecode)), Map.of());
    // long: an answer that comes, however slowly on a busy machine, is what is tested
    HealthProbe probe = new HealthProbe(Duration.ofSeconds(30));

    Topology.Instance p0 = topology.instance("p0").orElseThrow();
    assertNull(probe.get(p0.healthEndpoints().get(0)).notServing(p0,
        p0.healthEndpoints().get(0)));
    Topology.Instance d0 = topology.instance("d0").orElseThrow();
    assertEquals("answers as d0-of-another-run rank 0", probe.get(d0.healthEndpoints().get(0))
        .notServing(d0, d0.healthEndpoints().get(0)));
    Topology.Instance c0 = topology.instance("c0").orElseThrow();
    String proxy = probe.get(c0.healthEndpoints().get(0)).notServing(c0,
        c0.healthEndpoints().get(0));
    assertTrue(proxy.startsWith("nothing answers http://127.0.0.1:" + nothing + "/health ("),
        proxy);

    StatusReport report = StatusReport.fromHealth(topology, probe);
    assertFalse(report.allServing());
    List<String> lines = report.toString().lines().toList();
    assertEquals(5, lines.size(), report::toString);
    assertTrue(lines.get(1).matches("c0 +- +proxy +127\\.0\\.0\\.1:" + nothing
        + " +down \\(nothing answers .*\\) +- +- +-"), report::toString);
    assertTrue(lines.get(2).matches("p0 +- +prefill +127\\.0\\.0\\.1:" + prefill
        + " +serving +1 +2 +4/16 \\(25%\\)"), report::toString);
    assertTrue(lines.get(3).matches("d0 +0 +decode +127\\.0\\.0\\.1:" + staleDecode
        + " +down \\(answers as d0-of-another-run rank 0\\) +- +- +-"), report::toString);
    assertEquals("1 of 3 serving; down: c0, d0 rank 0", lines.get(4));
  }

  private static InstanceInfo info(String id, Role role, int rank) {
    return new InstanceInfo(id, role, rank, 1, "127.0.0.1", 0, 0, "deepseek", "sha256:x", "llama2",
        8, new InstanceInfo.Load(1, 2, 30, 4, 16), System.currentTimeMillis());
  }

  /** A server answering {@code /health} as a status server of {@code info}'s instance does. */
  private int serveHealth(InstanceInfo info) throws Exception {
    HttpServer server = ServiceTests.await(vertx.createHttpServer()
        .requestHandler(request -> request.response().end(new JsonObject().put("status", "ok")
            .put("instance", info.toJson()).encode()))
        .listen(0, "127.0.0.1"));
    return server.actualPort();
  }
}
