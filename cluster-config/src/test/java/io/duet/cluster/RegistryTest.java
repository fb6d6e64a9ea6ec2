package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.Registry.Change;
import io.duet.cluster.Registry.ChangeKind;
import io.duet.contract.Addresses;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import io.vertx.junit5.Checkpoint;
import io.vertx.junit5.VertxExtension;
import io.vertx.junit5.VertxTestContext;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** The registry and heartbeat on one non-clustered Vert.x (publish reaches local consumers). */
@ExtendWith(VertxExtension.class)
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class RegistryTest {

  static final DuetConfig FAST = DuetConfig.defaults()
      .with(Settings.CLUSTER_HEARTBEAT_MILLIS, 100)
      .with(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS, 500);

  static InstanceInfo info(String id, Role role, int running) {
    return new InstanceInfo(id, role, 0, 1, "127.0.0.1", 8000, role == Role.PREFILL ? 9000 : 0,
        "stories15M", "fp-1", "llama2", 16, new InstanceInfo.Load(running, 0, 0, 0, 64), 0);
  }

  @Test
  void heartbeatsAddUpdateAndExpire(Vertx vertx, VertxTestContext ctx) {
    Registry registry = Registry.create(vertx, FAST);
    AtomicInteger load = new AtomicInteger();
    List<Change> changes = new CopyOnWriteArrayList<>();
    Checkpoint added = ctx.checkpoint();
    Checkpoint updated = ctx.laxCheckpoint();
    Heartbeat[] heartbeat = new Heartbeat[1];
    long[] stoppedAt = new long[1];
    registry.onChange(change -> {
      changes.add(change);
      switch (change.kind()) {
        case ADDED -> ctx.verify(() -> {
          assertEquals(List.of(change.instance()), registry.instances());
          assertEquals(List.of(change.instance()), registry.instances(Role.PREFILL));
          assertEquals(List.of(), registry.instances(Role.DECODE));
          assertTrue(change.instance().heartbeatMillis() > 0, "stamped by the heartbeat");
          added.flag();
        });
        case UPDATED -> {
          if (change.instance().load().running() >= 2 && stoppedAt[0] == 0) {
            ctx.verify(() -> assertEquals(Optional.of(change.instance()), registry.get("p-1", 0)));
            heartbeat[0].stop();
            heartbeat[0].stop(); // idempotent
            stoppedAt[0] = System.nanoTime();
            updated.flag();
          }
        }
        case REMOVED -> ctx.verify(() -> {
          long silentMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - stoppedAt[0]);
          assertTrue(stoppedAt[0] != 0, "removed only after the heartbeat stopped");
          assertTrue(silentMillis >= 400 && silentMillis < 2000, "removed after " + silentMillis);
          assertTrue(change.reason().contains("no heartbeat"), change.reason());
          assertEquals(List.of(), registry.instances());
          assertEquals(Optional.empty(), registry.get("p-1", 0));
          long removals = changes.stream().filter(c -> c.kind() == ChangeKind.REMOVED).count();
          assertEquals(1, removals);
          registry.close().onComplete(ctx.succeedingThenComplete());
        });
        default -> throw new IllegalStateException();
      }
    });
    registry.ready().onComplete(ctx.succeeding(v ->
        heartbeat[0] = Heartbeat.start(vertx, FAST, () -> info("p-1", Role.PREFILL, load.getAndIncrement()))));
  }

  /**
   * An instance that drains stays in the view, marked as such, and one that leaves is dropped at
   * once: long before the heartbeat timeout, which this test's registry sets to a minute.
   */
  @Test
  void aDrainingInstanceStaysAndOneThatLeftIsDroppedAtOnce(Vertx vertx, VertxTestContext ctx) {
    DuetConfig slowTimeout = FAST.with(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS, 60_000);
    Registry registry = Registry.create(vertx, slowTimeout);
    List<Change> changes = new CopyOnWriteArrayList<>();
    // nothing to announce until the heartbeat is at hand (null skips a beat)
    AtomicReference<InstanceInfo.State> state = new AtomicReference<>();
    Heartbeat[] heartbeat = new Heartbeat[1];
    registry.onChange(change -> {
      InstanceInfo.State announced = change.instance().state();
      if (change.kind() == ChangeKind.UPDATED
          && changes.get(changes.size() - 1).instance().state() == announced) {
        return; // the periodic beat repeated an announcement
      }
      changes.add(change);
      if (change.kind() == ChangeKind.ADDED && change.instance().instanceId().equals("p-1")) {
        state.set(InstanceInfo.State.DRAINING);
        heartbeat[0].beatNow(); // at once, not a period later
      } else if (change.kind() == ChangeKind.UPDATED && announced == InstanceInfo.State.DRAINING) {
        ctx.verify(() -> assertEquals(List.of(change.instance()), registry.instances()));
        heartbeat[0].leave();
        heartbeat[0].beatNow(); // publishes nothing: it left
        // what one sender publishes arrives in order: the sentinel comes after all of it
        vertx.eventBus().publish(Addresses.REGISTRY, info("sentinel", Role.DECODE, 0).toJson());
      } else if (change.instance().instanceId().equals("sentinel")) {
        ctx.verify(() -> {
          assertEquals(List.of(ChangeKind.ADDED, ChangeKind.UPDATED, ChangeKind.REMOVED,
              ChangeKind.ADDED), changes.stream().map(Change::kind).toList());
          assertEquals("it left", changes.get(2).reason());
          assertEquals(List.of("sentinel"),
              registry.instances().stream().map(InstanceInfo::instanceId).toList());
          registry.close().onComplete(ctx.succeedingThenComplete());
        });
      }
    });
    registry.ready().onComplete(ctx.succeeding(v -> {
      // a period longer than the test: every announcement is asked for
      heartbeat[0] = Heartbeat.start(vertx,
          slowTimeout.with(Settings.CLUSTER_HEARTBEAT_MILLIS, 30_000),
          () -> state.get() == null ? null : info("p-1", Role.PREFILL, 0).withState(state.get()));
      state.set(InstanceInfo.State.SERVING);
      heartbeat[0].beatNow();
    }));
  }

  @Test
  void invalidAndStaleHeartbeatsAreIgnored(Vertx vertx, VertxTestContext ctx) {
    Registry registry = Registry.create(vertx, FAST);
    List<Change> changes = new CopyOnWriteArrayList<>();
    registry.onChange(change -> {
      throw new IllegalStateException("a failing handler does not stop the others");
    });
    registry.onChange(change -> {
      changes.add(change);
      if (!change.instance().instanceId().equals("sentinel")) {
        return;
      }
      // one consumer gets its messages in order: everything before the sentinel was handled
      ctx.verify(() -> {
        assertEquals(List.of("d-1", "d-2", "sentinel"),
            changes.stream().map(c -> c.instance().instanceId()).toList());
        assertEquals(1, registry.get("d-1", 0).orElseThrow().load().running());
        assertEquals(List.of("d-1", "d-2", "sentinel"),
            registry.instances(Role.DECODE).stream().map(InstanceInfo::instanceId).toList());
        registry.close().onComplete(ctx.succeedingThenComplete());
      });
    });
    registry.ready().onComplete(ctx.succeeding(v -> {
      var bus = vertx.eventBus();
      bus.publish(Addresses.REGISTRY, "not json");
      bus.publish(Addresses.REGISTRY, info("d-1", Role.DECODE, 0).toJson().put("v", 99));
      bus.publish(Addresses.REGISTRY, new JsonObject().put("v", 1));
      bus.publish(Addresses.REGISTRY, info("d-1", Role.DECODE, 1).withLoad(
          new InstanceInfo.Load(1, 0, 0, 0, 64), 2000).toJson());
      bus.publish(Addresses.REGISTRY, info("d-1", Role.DECODE, 2).withLoad(
          new InstanceInfo.Load(2, 0, 0, 0, 64), 1000).toJson()); // older: ignored
      bus.publish(Addresses.REGISTRY, info("d-2", Role.DECODE, 3).withLoad(
          new InstanceInfo.Load(3, 0, 0, 0, 64), 1000).toJson());
      bus.publish(Addresses.REGISTRY, info("sentinel", Role.DECODE, 0).toJson());
    }));
  }

  @Test
  void theRanksOfOneDecodeInstanceAreEntriesOfTheirOwn(Vertx vertx, VertxTestContext ctx) {
    Registry registry = Registry.create(vertx, FAST);
    registry.onChange(change -> {
      if (!change.instance().instanceId().equals("sentinel")) {
        return;
      }
      ctx.verify(() -> {
        assertEquals(List.of("d0#0", "d0#1", "d0#2"), registry.instances(Role.DECODE).stream()
            .filter(i -> i.instanceId().equals("d0")).map(InstanceInfo::key).toList());
        assertEquals(7, registry.get("d0", 1).orElseThrow().load().running());
        assertEquals(Optional.empty(), registry.get("d0", 3));
        registry.close().onComplete(ctx.succeedingThenComplete());
      });
    });
    registry.ready().onComplete(ctx.succeeding(v -> {
      for (int rank : new int[] {2, 0, 1}) {
        vertx.eventBus().publish(Addresses.REGISTRY, rank("d0", rank, 3, rank == 1 ? 7 : 0)
            .toJson());
      }
      vertx.eventBus().publish(Addresses.REGISTRY, info("sentinel", Role.DECODE, 0).toJson());
    }));
  }

  private static InstanceInfo rank(String id, int rank, int ranks, int running) {
    return new InstanceInfo(id, Role.DECODE, rank, ranks, "127.0.0.1", 9100 + rank, 0,
        "stories15M", "fp-1", "llama2", 16, new InstanceInfo.Load(running, 0, 0, 0, 64), 1);
  }

  @Test
  void anyEventBusClientCanAskForTheView(Vertx vertx, VertxTestContext ctx) {
    Registry registry = Registry.create(vertx, FAST);
    registry.onChange(change -> {
      if (change.kind() == ChangeKind.ADDED) {
        vertx.eventBus().<io.vertx.core.json.JsonArray>request(Addresses.REGISTRY_VIEW, "")
            .onComplete(ctx.succeeding(reply -> ctx.verify(() -> {
              assertEquals(1, reply.body().size());
              InstanceInfo seen = InstanceInfo.fromJson(reply.body().getJsonObject(0));
              assertEquals("d-1", seen.instanceId());
              assertEquals(Role.DECODE, seen.role());
              registry.close().onComplete(ctx.succeedingThenComplete());
            })));
      }
    });
    registry.ready().onComplete(ctx.succeeding(v ->
        vertx.eventBus().publish(Addresses.REGISTRY, info("d-1", Role.DECODE, 1)
            .withLoad(new InstanceInfo.Load(1, 0, 0, 0, 64), System.currentTimeMillis())
            .toJson())));
  }
}
