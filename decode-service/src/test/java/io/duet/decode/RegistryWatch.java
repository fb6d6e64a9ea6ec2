package io.duet.decode;

import static io.duet.service.ServiceTests.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Registry;
import io.vertx.core.Vertx;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** A registry and the instances it adds and removes, in order (updates are left out). */
final class RegistryWatch {

  private final Registry registry;
  private final BlockingQueue<Registry.Change> changes = new LinkedBlockingQueue<>();

  private RegistryWatch(Registry registry) {
    this.registry = registry;
    registry.onChange(change -> {
      if (change.kind() != Registry.ChangeKind.UPDATED) {
        changes.add(change);
      }
    });
  }

  /** A registry of {@code config}'s heartbeat timeout on {@code vertx}, ready. */
  static RegistryWatch start(Vertx vertx, DuetConfig config) throws Exception {
    Registry registry = Registry.create(vertx, config);
    await(registry.ready());
    return new RegistryWatch(registry);
  }

  Registry registry() {
    return registry;
  }

  /** The next addition or removal, which must come within 5 s and be of {@code kind}. */
  Registry.Change next(Registry.ChangeKind kind) throws InterruptedException {
    Registry.Change change = changes.poll(5, TimeUnit.SECONDS);
    assertNotNull(change, "no registry change within 5 s; expected " + kind);
    assertEquals(kind, change.kind(), change.toString());
    return change;
  }

  /** The next addition or removal within {@code millis}, or null. */
  Registry.Change poll(long millis) throws InterruptedException {
    return changes.poll(millis, TimeUnit.MILLISECONDS);
  }
}
