package io.duet.decode;

import static io.duet.service.ServiceTests.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Registry;
import io.duet.cluster.Settings;
import io.duet.contract.Addresses;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.prefill.PrefillMain;
import io.duet.service.ServiceRuntime;
import io.duet.service.ServiceTests.Engines;
import io.duet.service.WorkerVerticle;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A prefill or decode worker deployed as its main deploys it announces itself on the registry
 * while deployed, and only then: undeploying it announces that it drains, then that it left,
 * and stops its heartbeat, so registries drop it at once.
 */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class WorkerHeartbeatTest {

  private static final int HEARTBEAT_MILLIS = 50;
  /** Longer than the test: a removal within it is the worker's own announcement. */
  private static final int TIMEOUT_MILLIS = 60_000;

  private Vertx vertx;
  private final Engines engines = new Engines();

  @BeforeEach
  void start() {
    vertx = Vertx.vertx();
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  @ParameterizedTest
  @EnumSource(value = Role.class, names = {"PREFILL", "DECODE"})
  void undeployingAWorkerAnnouncesItsDrainThenItsLeaveAndTheRegistryDropsIt(Role role)
      throws Exception {
    String id = role.wireName() + "-undeployed";
    DuetConfig config = DuetConfig.defaults().with(Settings.INSTANCE_ID, id)
        .with(Settings.CLUSTER_HEARTBEAT_MILLIS, HEARTBEAT_MILLIS)
        .with(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS, TIMEOUT_MILLIS);
    RegistryWatch registry = RegistryWatch.start(vertx, config);
    // when the latest heartbeat of the worker that arrived was sent (each is stamped with it)
    AtomicLong lastBeatSentMillis = new AtomicLong();
    await(vertx.eventBus().<JsonObject>consumer(Addresses.REGISTRY, message -> {
      InstanceInfo beat = InstanceInfo.fromJson(message.body());
      if (id.equals(beat.instanceId())) {
        lastBeatSentMillis.accumulateAndGet(beat.heartbeatMillis(), Math::max);
      }
    }).completion());

    WorkerVerticle worker = role == Role.PREFILL
        ? PrefillMain.create(config, engines.open(64), "aidreams")
        : DecodeMain.create(config, engines.open(64), "aidreams", 0);
    ServiceRuntime.deployWorker(new ServiceRuntime.Member(vertx, config), worker);

    Registry.Change added = registry.next(Registry.ChangeKind.ADDED);
    assertEquals(id, added.instance().instanceId());
    assertEquals(role, added.instance().role());

    await(vertx.undeploy(worker.deploymentID()));
    long undeployedMillis = System.currentTimeMillis();
    // The heartbeat runs on a periodic timer of the worker's deployment, which stop() stops and
    // Vert.x cancels with the deployment: gone, it cannot send another one.
    assertFalse(vertx.deploymentIDs().contains(worker.deploymentID()));

    Registry.Change draining = registry.next(Registry.ChangeKind.UPDATED);
    assertEquals(InstanceInfo.State.DRAINING, draining.instance().state(),
        "the undeployed worker announces its drain");
    Registry.Change removed = registry.next(Registry.ChangeKind.REMOVED);
    assertEquals(id, removed.instance().instanceId());
    assertEquals("it left", removed.reason());
    // Every announcement that came had been sent before the undeployment ended.
    assertTrue(lastBeatSentMillis.get() > 0 && lastBeatSentMillis.get() <= undeployedMillis,
        "last heartbeat sent at " + lastBeatSentMillis.get() + ", undeployed at "
            + undeployedMillis);
    assertTrue(registry.registry().get(id, 0).isEmpty());
  }
}
