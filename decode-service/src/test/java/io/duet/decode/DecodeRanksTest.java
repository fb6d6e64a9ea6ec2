package io.duet.decode;

import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.shared;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.InvalidConfigException;
import io.duet.cluster.Registry;
import io.duet.cluster.Settings;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.engine.Engine;
import io.duet.service.ServiceRuntime;
import io.duet.service.WorkerVerticle;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientRequest;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A decode instance of several data-parallel ranks, deployed as its main deploys it: one
 * engine per rank over one load of the model, one verticle per rank, each with its own status
 * endpoint and registry entry, all of them undeployed cleanly.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class DecodeRanksTest {

  private static final String ID = "decode-ranks";
  private static final String HOST = "127.0.0.1";

  private Vertx vertx;
  private final List<Engine> engines = new ArrayList<>();
  /** Kept in a field: Vert.x 5 may close a client that nothing references. */
  private HttpClient http;

  @BeforeEach
  void start() {
    vertx = Vertx.vertx();
    http = vertx.createHttpClient();
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.forEach(Engine::close);
  }

  private static DuetConfig twoRanks() {
    return DuetConfig.defaults().with(Settings.INSTANCE_ID, ID).with(Settings.DECODE_DP, 2)
        .with(Settings.DECODE_KV_CACHE_MB, 4)
        .with(Settings.CLUSTER_HEARTBEAT_MILLIS, 50)
        // The ranks leave by announcing it, not by silence: a timeout a busy machine's stalls
        // cannot reach, so that no rank is dropped and added again while the test watches.
        .with(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS, 10_000);
  }

  @Test
  void eachRankHasItsOwnOptionsAndStatusPort() {
    DuetConfig config = twoRanks().with(Settings.DECODE_HTTP_PORT, 9100);
    DecodeOptions rank0 = DecodeOptions.from(config, "aidreams", 0);
    DecodeOptions rank1 = DecodeOptions.from(config, "aidreams", 1);
    assertEquals(List.of(0, 2, 9100), List.of(rank0.dpRank(), rank0.ranks(), rank0.httpPort()));
    assertEquals(List.of(1, 2, 9101), List.of(rank1.dpRank(), rank1.ranks(), rank1.httpPort()));
    assertEquals(0, DecodeOptions.from(twoRanks(), "aidreams", 1).httpPort(),
        "port 0: any free port for every rank");
    assertThrows(IndexOutOfBoundsException.class,
        () -> DecodeOptions.from(config, "aidreams", 2));
    InvalidConfigException noPortForRank1 = assertThrows(InvalidConfigException.class,
        () -> twoRanks().with(Settings.DECODE_HTTP_PORT, 65535));
    assertTrue(noPortForRank1.getMessage().contains("decode.http-port"),
        noPortForRank1.getMessage());
  }

  @Test
  void theRanksOfAnInstanceAnnounceThemselvesApartAndLeaveTogether() throws Exception {
    DuetConfig config = twoRanks();
    RegistryWatch registry = RegistryWatch.start(vertx, config);

    engines.addAll(ServiceRuntime.openEngines(config, Role.DECODE, shared("aidreams260K.bin"),
        shared("aidreams260K.tok512.bin"), false));
    assertEquals(2, engines.size());
    int cores = Runtime.getRuntime().availableProcessors();
    for (Engine engine : engines) {
      assertEquals(Math.max(1, cores / 2), engine.options().threads(),
          "decode.threads 0: the cores shared by the ranks");
    }
    List<WorkerVerticle> workers = ServiceRuntime.deployWorkers(
        new ServiceRuntime.Member(vertx, config), engines, DecodeMain::create, "aidreams");

    List<InstanceInfo> added = List.of(registry.next(Registry.ChangeKind.ADDED).instance(),
        registry.next(Registry.ChangeKind.ADDED).instance());
    assertEquals(Set.of(0, 1), ranksOf(added));
    for (InstanceInfo entry : added) {
      assertEquals(ID, entry.instanceId());
      assertEquals(Role.DECODE, entry.role());
      assertEquals(2, entry.ranks());
    }
    assertNotEquals(added.get(0).httpPort(), added.get(1).httpPort());
    for (InstanceInfo entry : added) {
      JsonObject health = new JsonObject(get(entry.httpPort(), "/health"));
      assertEquals(entry.dpRank(), health.getJsonObject("instance").getInteger("dpRank"),
          "the status port of rank " + entry.dpRank() + " reports that rank");
      assertTrue(get(entry.httpPort(), "/metrics").contains("rank=\"" + entry.dpRank() + "\""));
    }
    assertEquals(2, registry.registry().instances(Role.DECODE).size());

    for (WorkerVerticle worker : workers) {
      await(vertx.undeploy(worker.deploymentID()));
    }
    assertEquals(Set.of(0, 1), ranksOf(List.of(
        registry.next(Registry.ChangeKind.REMOVED).instance(),
        registry.next(Registry.ChangeKind.REMOVED).instance())));
    assertTrue(registry.registry().instances(Role.DECODE).isEmpty());
  }

  private static Set<Integer> ranksOf(List<InstanceInfo> entries) {
    Set<Integer> ranks = new TreeSet<>();
    entries.forEach(entry -> ranks.add(entry.dpRank()));
    return ranks;
  }

  private String get(int port, String path) throws Exception {
    Future<Buffer> body = http.request(HttpMethod.GET, port, HOST, path)
        .compose(HttpClientRequest::send).compose(HttpClientResponse::body);
    return await(body).toString();
  }
}
